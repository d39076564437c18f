"""The word -> category mapping: plurals, synonyms, phrases, colours, custom categories."""

from __future__ import annotations

import pytest

from mmcam.evaluation.word_categories import (
    COCO_CATEGORIES,
    CategoryMention,
    WordCategories,
    plural,
)


@pytest.mark.parametrize(
    ("singular", "expected"),
    [
        ("dog", "dogs"),
        ("bus", "buses"),
        ("couch", "couches"),
        ("toothbrush", "toothbrushes"),
        ("pony", "ponies"),
        ("toy", "toys"),
        ("knife", "knives"),
        ("person", "people"),
        ("woman", "women"),
        ("mouse", "mice"),
        ("sheep", "sheep"),
        ("skis", "skis"),
        ("hot dog", "hot dogs"),
        ("teddy bear", "teddy bears"),
    ],
)
def test_plural(singular, expected):
    assert plural(singular) == expected


def test_all_80_coco_categories_have_their_official_ids_and_no_clashing_words():
    categories = WordCategories.coco()
    assert len(COCO_CATEGORIES) == 80 and max(COCO_CATEGORIES) == 90
    assert categories.clashes == []
    for category_id, name in COCO_CATEGORIES.items():
        assert categories.category_of(name) == category_id
        assert categories.category_of(plural(name)) == category_id


@pytest.mark.parametrize(
    ("word", "category"),
    [
        ("men", "person"),
        ("Women", "person"),
        ("kids", "person"),
        ("puppies", "dog"),
        ("bike", "bicycle"),
        ("motorbikes", "motorcycle"),
        ("plane", "airplane"),
        ("sofa", "couch"),
        ("television", "tv"),
        ("fridge", "refrigerator"),
        ("doughnuts", "donut"),
        ("ski", "skis"),
        ("table", "dining table"),
        ("phones", "cell phone"),
        ("ball", "sports ball"),
        ("hair dryer", "hair drier"),
    ],
)
def test_synonyms_and_their_plurals_name_coco_categories(word, category):
    categories = WordCategories.coco()
    category_id = categories.category_of(word)
    assert category_id is not None and COCO_CATEGORIES[category_id] == category


def test_words_that_name_no_category_are_not_matched():
    categories = WordCategories.coco()
    for word in ("a", "the", "sitting", "street", "bag", "board", "light", "sign", "red"):
        assert categories.category_of(word) is None, word


def test_find_prefers_the_longest_phrase_and_maps_it_to_its_head_word():
    words = "two teddy bears beside a bear and hot dogs on a dining table".split()
    found = WordCategories.coco().find(words)
    assert found == [
        CategoryMention(1, 3, 88, "teddy bear"),
        CategoryMention(5, 6, 23, "bear"),
        CategoryMention(7, 9, 58, "hot dog"),
        CategoryMention(11, 13, 67, "dining table"),
    ]
    assert [words[m.head] for m in found] == ["bears", "bear", "dogs", "table"]


def test_a_colour_word_before_a_mention_is_its_colour_even_when_it_names_a_category():
    found = WordCategories.coco().find("an orange cat eats an orange".split())
    assert [(m.category, m.color, m.start) for m in found] == [
        ("cat", "orange", 2),
        ("orange", None, 5),
    ]


def test_shapes_captions_pair_colour_and_kind():
    words = "a red circle to the left of an orange star and two squares".split()
    found = WordCategories.shapes().find(words)
    assert [(m.category_id, m.category, m.color, m.head) for m in found] == [
        (1, "circle", "red", 2),
        (4, "star", "orange", 9),
        (2, "square", None, 12),
    ]


def test_categories_from_an_instances_file_without_synonyms_name_themselves():
    categories = WordCategories({7: "widget", 9: "circle"})
    assert categories.category_of("widgets") == 7
    assert categories.category_of("disc") == 9  # known names keep their synonyms
    assert categories.category_of("dog") is None


def test_a_phrase_claimed_twice_goes_to_the_first_category_and_is_reported():
    categories = WordCategories({1: "mug", 2: "cup"})
    assert categories.category_of("mug") == 1
    assert categories.clashes == [("mug", 1, 2), ("mugs", 1, 2)]
