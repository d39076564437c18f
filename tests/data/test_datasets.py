"""Readers of the official COCO / VQA v2 files, image loading, the training Datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcam.data.annotations import read_coco_captions, read_coco_instances, read_vqa, split_paths
from mmcam.data.files import BadData
from mmcam.data.images import image_path, load_image, preprocess, unnormalize
from mmcam.data.shapes import write_shapes
from mmcam.data.training_sets import (
    CaptionDataset,
    VQADataset,
    answer_scores,
    collate_captions,
    collate_vqa,
    top_answers,
)
from mmcam.data.vocab import Vocabulary

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "coco_vqa"


def test_split_paths_are_the_official_names() -> None:
    paths = split_paths("root", "val")
    assert paths["captions"] == Path("root/annotations/captions_val2014.json")
    assert paths["instances"] == Path("root/annotations/instances_val2014.json")
    assert paths["questions"] == Path("root/v2_OpenEnded_mscoco_val2014_questions.json")
    assert paths["vqa_annotations"] == Path("root/v2_mscoco_val2014_annotations.json")
    assert paths["images"] == Path("root/val2014")


def test_read_coco_captions_fixture() -> None:
    data = read_coco_captions(split_paths(FIXTURE, "val")["captions"])
    assert list(data.images) == [42, 73]
    assert data.images[42].file_name == "COCO_val2014_000000000042.jpg"
    assert (data.images[42].width, data.images[42].height) == (12, 8)
    assert data.captions[42] == [
        "A red circle to the left of a blue square.",
        "a blue square to the right of a red circle",
    ]
    assert data.captions[73] == ["Two people riding bikes down a road"]


def test_read_coco_instances_fixture() -> None:
    data = read_coco_instances(split_paths(FIXTURE, "val")["instances"])
    assert data.categories == {1: "circle", 2: "square"}
    boxes = [(i.bbox, i.category_id, i.id) for i in data.instances[42]]
    assert boxes == [((1.0, 1.0, 3.5, 4.0), 1, 5001), ((6.0, 2.0, 4.0, 4.0), 2, 5003)]
    crowd = data.instances[73][0]
    assert crowd.iscrowd == 1 and crowd.area == 10.0


def test_read_vqa_fixture_joins_questions_and_answers() -> None:
    paths = split_paths(FIXTURE, "val")
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    assert [i.question_id for i in items] == [42000, 42001, 73000]
    first = items[0]
    assert first.image_id == 42 and first.question == "What color is the circle?"
    assert first.answers.count("red") == 7 and len(first.answers) == 10
    assert (first.multiple_choice_answer, first.answer_type) == ("red", "other")
    assert items[1].question_type == "how many"
    assert top_answers(items, 2) == ["2", "red"]  # ties broken alphabetically
    scores = answer_scores(first.answers, {"red": 0, "orange": 1, "pink": 2})
    assert scores == {0: 1.0, 1: pytest.approx(2 / 3), 2: pytest.approx(1 / 3)}
    questions_only = read_vqa(paths["questions"])
    assert questions_only[2].answers == () and questions_only[2].question == "Is this a road?"


def test_read_vqa_rejects_a_question_without_annotation(tmp_path) -> None:
    paths = split_paths(FIXTURE, "val")
    bad = tmp_path / "annotations.json"
    bad.write_text('{"annotations": []}')
    with pytest.raises(ValueError, match="no annotation of question 42000"):
        read_vqa(paths["questions"], bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_vqa(tmp_path / "missing.json")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "1"])
def test_load_image_converts_modes_to_rgb(tmp_path, mode) -> None:
    rgb = np.zeros((6, 5, 3), dtype=np.uint8)
    rgb[:, :, 0] = 200
    image = Image.fromarray(rgb, "RGB")
    if mode == "I;16":
        image = Image.fromarray(np.full((6, 5), 65535 // 2, dtype=np.uint16))  # mode I;16
    else:
        image = image.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (5, 6)
    if mode == "I;16":  # 16-bit rescaled, not clipped to white
        assert abs(int(np.asarray(loaded)[0, 0, 0]) - 128) <= 1


def test_load_image_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(BadData, match="image .*nothing.png does not exist"):  # a dataset run
        load_image(tmp_path / "nothing.png")  # skips BadData, and only that
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg is not a readable image"):
        load_image(text)


def test_preprocess_resizes_and_normalises() -> None:
    image = Image.new("RGB", (64, 32), (255, 0, 128))
    x = preprocess(image)
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert torch.allclose(unnormalize(x)[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]), atol=1e-6)


def test_fixture_images_resolve_by_official_name(tmp_path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(FIXTURE, root)
    (root / "val2014").mkdir()
    Image.new("RGB", (12, 8), (255, 0, 0)).save(root / "val2014" / "COCO_val2014_000000000042.jpg")
    Image.new("L", (10, 10), 7).save(root / "val2014" / "COCO_val2014_000000000073.jpg")
    assert image_path(root, "val", 42).name == "COCO_val2014_000000000042.jpg"
    vocab = Vocabulary.build(["what color is the circle ?"])
    dataset = VQADataset(root, "val", vocab, ["red", "2", "yes"])
    batch = collate_vqa([dataset[0], dataset[1]])
    assert batch["images"].shape == (2, 3, 128, 128)
    assert batch["question_ids"] == [42000, 42001, 73000]
    assert batch["image_index"].tolist() == [0, 0, 1]
    assert batch["targets"][:, 0].tolist() == [1.0, 0.0, 0.0]  # "red" for question 42000
    assert batch["targets"][2, 2] == 1.0


def test_shapes_written_in_official_layout_read_back(tmp_path) -> None:
    write_shapes(tmp_path, "val", 4, seed=1)
    paths = split_paths(tmp_path, "val")
    captions = read_coco_captions(paths["captions"])
    instances = read_coco_instances(paths["instances"])
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    assert list(captions.images) == [1, 2, 3, 4]
    assert all(len(c) == 5 for c in captions.captions.values())
    assert set(instances.categories.values()) == {"circle", "square", "triangle", "star"}
    assert all(len(i.answers) == 10 for i in items)
    assert (paths["images"] / "COCO_val2014_000000000001.png").is_file()
    vocab = Vocabulary.build(c for caps in captions.captions.values() for c in caps)
    dataset = CaptionDataset(tmp_path, "val", vocab, references=2)
    batch = collate_captions([dataset[0], dataset[1]])
    assert batch["tokens"].shape[0] == 4 and batch["image_index"].tolist() == [0, 0, 1, 1]
    assert (batch["tokens"][:, 0] == vocab.BOS_INDEX).all()
    ends = batch["tokens"].gather(1, batch["lengths"][:, None]).squeeze(1)
    assert (ends == vocab.EOS_INDEX).all()  # lengths count the words and EOS



def test_permuted_answers_keep_the_questions_and_the_answer_counts(tmp_path) -> None:
    write_shapes(tmp_path, "train", 12, seed=2)
    vocab = Vocabulary.build(["what color is the circle"])
    answers = ["yes", "no", "red", "blue", "green", "1", "2", "circle", "square"]
    plain = VQADataset(tmp_path, "train", vocab, answers)
    shuffled = VQADataset(tmp_path, "train", vocab, answers, permute_answers=0)
    before, after = plain.questions(), shuffled.questions()
    assert [q.question for q in after] == [q.question for q in before]
    assert sorted(q.answers for q in after) == sorted(q.answers for q in before)
    moved = sum(a.answers != b.answers for a, b in zip(after, before, strict=True))
    assert moved > len(before) // 2  # most questions now carry another question's answers
    again = VQADataset(tmp_path, "train", vocab, answers, permute_answers=0).questions()
    assert [q.answers for q in again] == [q.answers for q in after]  # the seed fixes it


def test_shuffled_captions_give_each_image_another_images_captions(tmp_path) -> None:
    write_shapes(tmp_path, "train", 12, seed=3)
    vocab = Vocabulary.build(["a red circle"])
    plain = CaptionDataset(tmp_path, "train", vocab)
    shuffled = CaptionDataset(tmp_path, "train", vocab, shuffle_captions=1)
    assert shuffled.image_ids == plain.image_ids
    before = [plain.references[i] for i in plain.image_ids]
    after = [shuffled.references[i] for i in shuffled.image_ids]
    assert sorted(after) == sorted(before)
    assert sum(a != b for a, b in zip(after, before, strict=True)) > len(before) // 2
