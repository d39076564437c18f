"""The synthetic shapes generator: determinism, layout rules, boxes, captions, questions."""

from __future__ import annotations

import numpy as np
import pytest
from repo_files import script

from mmcam.data.shapes import COLORS, KINDS, MIN_SIZE, make_scene

SCENES = [make_scene(seed=5, index=i, split="train") for i in range(60)]


def test_same_seed_and_index_give_the_same_scene() -> None:
    a, b = make_scene(11, 3, "val"), make_scene(11, 3, "val")
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.objects == b.objects and a.captions == b.captions and a.questions == b.questions
    c = make_scene(11, 4, "val")
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))
    d = make_scene(11, 3, "train")  # splits differ
    assert not np.array_equal(np.asarray(a.image), np.asarray(d.image))


def test_scenes_have_one_to_three_unique_non_overlapping_shapes() -> None:
    counts = set()
    for scene in SCENES:
        assert scene.image.size == (128, 128) and scene.image.mode == "RGB"
        objects = scene.objects
        counts.add(len(objects))
        assert 1 <= len(objects) <= 3
        pairs = [(o.color, o.kind) for o in objects]
        assert len(set(pairs)) == len(pairs), "two objects share colour and kind"
        for o in objects:
            assert o.kind in KINDS and o.color in COLORS
            assert max(o.bbox[2], o.bbox[3]) >= MIN_SIZE - 1
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                ax, ay, aw, ah = a.bbox
                bx, by, bw, bh = b.bbox
                assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
        centers = [o.center[0] for o in objects]
        assert centers == sorted(centers), "objects are listed left to right"
    assert counts == {1, 2, 3}
    assert {o.kind for s in SCENES for o in s.objects} == set(KINDS)
    assert {o.color for s in SCENES for o in s.objects} == set(COLORS)


def _colour_mask(pixels: np.ndarray, colour, radius: float) -> np.ndarray:
    return np.linalg.norm(pixels - np.asarray(colour, dtype=float), axis=2) < radius


def test_boxes_contain_the_shapes_pixels() -> None:
    for scene in SCENES[:30]:
        pixels = np.asarray(scene.image).astype(float)
        outside = np.ones((128, 128), dtype=bool)
        for o in scene.objects:
            x, y, w, h = o.bbox
            outside[y : y + h, x : x + w] = False
        for o in scene.objects:
            x, y, w, h = o.bbox
            box = pixels[y : y + h, x : x + w]
            # the shape's own (jittered) colour: the median of nominal-colour pixels in its box
            own = np.median(box[_colour_mask(box, COLORS[o.color], 45)], axis=0)
            inside = _colour_mask(box, own, 40)
            assert inside.sum() >= 0.8 * o.area, (o, inside.sum())
            # the box is tight: the shape touches all four sides
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            stray = (_colour_mask(pixels, own, 25) & outside).sum()  # textured background
            assert stray < 0.02 * o.area, "shape-coloured pixels outside every box"


def test_captions_name_every_shape_and_the_first_lists_them_left_to_right() -> None:
    for scene in SCENES:
        assert len(scene.captions) == 5
        names = [o.name for o in scene.objects]
        for caption in scene.captions:
            for name in names:
                assert name in caption, (name, caption)
        canonical = scene.captions[0]
        positions = [canonical.index(name) for name in names]
        assert positions == sorted(positions)
        if len(names) > 1:
            assert "to the left of" in canonical


def test_answers_are_true_of_the_scene() -> None:
    types = set()
    for scene in SCENES:
        kinds = [o.kind for o in scene.objects]
        colors = [o.color for o in scene.objects]
        pairs = [(o.color, o.kind) for o in scene.objects]
        for question, answer, _ in scene.questions:
            if question.startswith("what color is the "):
                kind = question.removeprefix("what color is the ").rstrip("?")
                assert kinds.count(kind) == 1, "colour asked of an ambiguous kind"
                assert scene.objects[kinds.index(kind)].color == answer
                types.add("color")
            elif question.startswith("what shape is the "):
                color = question.split()[4]
                assert colors.count(color) == 1
                assert scene.objects[colors.index(color)].kind == answer
                types.add("shape")
            elif question == "how many shapes are there?":
                assert answer == str(len(kinds))
                types.add("count")
            elif question.startswith("how many "):
                word = question.split()[2]
                expected = colors.count(word) if word in COLORS else kinds.count(word[:-1])
                assert answer == str(expected)
                types.add("count")
            elif question.startswith("is there "):
                color, kind = question.rstrip("?").split()[-2:]
                assert answer == ("yes" if (color, kind) in pairs else "no")
                types.add("exists")
            elif question.startswith("is the "):
                color, kind = question.split()[2:4]
                o = scene.objects[pairs.index((color, kind))]
                cx, cy = o.center
                expected = {"left": cx < 64, "right": cx >= 64, "top": cy < 64, "bottom": cy >= 64}
                assert expected[answer], (question, answer, o)
                types.add("position")
            else:
                pytest.fail(f"unexpected question {question!r}")
    assert types == {"color", "shape", "count", "exists", "position"}


def test_make_shapes_writes_a_test_split_and_leaves_train_as_it_was(tmp_path) -> None:
    """Three splits; the train files are byte for byte those of a run without a test split,
    so the bundled checkpoints' training data is unchanged."""
    import hashlib
    from pathlib import Path

    make_shapes = script("make_shapes")

    def digests(root: Path, split: str) -> dict[str, str]:
        files = [
            *(root / f"{split}2014").iterdir(),
            root / "annotations" / f"captions_{split}2014.json",
            root / "annotations" / f"instances_{split}2014.json",
            root / f"v2_OpenEnded_mscoco_{split}2014_questions.json",
        ]
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    for name, test_count in (("three", "2"), ("two", "0")):
        make_shapes.main(
            ["--out", str(tmp_path / name), "--train", "3", "--val", "2", "--test", test_count]
        )
    assert digests(tmp_path / "three", "train") == digests(tmp_path / "two", "train")
    assert digests(tmp_path / "three", "val") == digests(tmp_path / "two", "val")
    assert not (tmp_path / "two" / "test2014").exists()
    test = digests(tmp_path / "three", "test")
    assert len([name for name in test if name.startswith("COCO_test2014_")]) == 2
    val = set(digests(tmp_path / "three", "val").values())
    assert not val & set(test.values())  # no test scene repeats a val scene
