"""Dataset runs score the map's own box and the refined box (map + image) side by side, and
count the refined boxes flagged as guesses."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mmcam.boxes.evidence import LOW_EXCESS
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import report_text, summary
from mmcam.runs.report import caption_metrics
from mmcam.runs.scoring import score_map


def drawn_square() -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    ImageDraw.Draw(image).rectangle([20, 10, 43, 33], fill=(20, 20, 230))
    return np.asarray(image), [20.0, 10.0, 24.0, 24.0]


def corner_peak() -> torch.Tensor:
    """A map at the model's input resolution (32 px) peaked on the square's top-left corner."""
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    return torch.exp(-((rows - 6.5) ** 2 + (cols - 11.5) ** 2) / 4)


def test_score_map_gives_both_boxes_and_the_default_is_the_refined_one():
    image, truth = drawn_square()
    scored = score_map(corner_peak(), (64, 64), [truth], RunOptions(boxes="refined"), image)
    assert scored["box"] == scored["refined_box"] and scored["box_refined"]
    assert scored["refined_iou"] > 0.85 and scored["threshold_iou"] < 0.5
    assert scored["iou"] == scored["refined_iou"] and not scored["flat_map"]
    own = score_map(corner_peak(), (64, 64), [truth], RunOptions(boxes="threshold"), image)
    assert own["box"] == own["threshold_box"] == scored["threshold_box"]
    assert own["iou"] == own["threshold_iou"] and not own["box_refined"]


def test_a_flat_map_has_no_box_and_is_flagged():
    image, truth = drawn_square()
    scored = score_map(torch.zeros(32, 32), (64, 64), [truth], RunOptions(boxes="refined"), image)
    assert scored["flat_map"] and scored["box"] is None and scored["refined_box"] is None
    assert scored["iou"] == scored["threshold_iou"] == 0.0


def test_refined_boxes_without_the_image_are_refused():
    with pytest.raises(ValueError, match="refined boxes need the image"):
        score_map(corner_peak(), (64, 64), None, RunOptions(boxes="refined"))


def test_metrics_report_both_boxes_localisation_accuracy():
    def mention(threshold_iou: float, refined_iou: float) -> dict:
        return {"category": "square", "category_id": 1, "box": None, "gt_boxes": [[0, 0, 5, 5]],
                "pointing": True, "pointing_0px": True, "pointing_tolerance": 8.6,
                "iou": refined_iou, "threshold_iou": threshold_iou,
                "refined_iou": refined_iou, "box_hits": [0] * 100}  # fmt: skip

    records = [
        {"image_id": 1, "caption": "a square", "words": ["a", "square"],
         "mentions": [mention(0.2, 0.8), mention(0.6, 0.9), mention(0.1, 0.3)]},
    ]  # fmt: skip
    options = RunOptions(boxes="refined", deletion_steps=0)
    metrics = caption_metrics(records, {1: ["a square"]}, options, instances=True)
    located = metrics["loc_accuracy"]
    assert located["accuracy"] == located["refined_accuracy"] == pytest.approx(2 / 3)
    assert located["threshold_accuracy"] == pytest.approx(1 / 3)
    assert metrics["boxes"] == "refined"
    line = summary({**metrics, "layer": None})
    assert line["loc_accuracy_refined"] == pytest.approx(2 / 3)
    assert line["loc_accuracy_threshold"] == pytest.approx(1 / 3)


def test_refined_boxes_carry_their_flags_and_the_evidence_score():
    image, truth = drawn_square()
    scored = score_map(corner_peak(), (64, 64), [truth], RunOptions(boxes="refined"), image)
    assert scored["refined_box_flags"] == [] and scored["refined_box_score"] > LOW_EXCESS
    plain = np.full((64, 64, 3), 90, dtype=np.uint8)  # nothing there: the seed is the extent
    guess = score_map(corner_peak(), (64, 64), [truth], RunOptions(boxes="refined"), plain)
    assert guess["refined_box_flags"] == ["no_edge"]
    assert guess["box_score"] < LOW_EXCESS < scored["box_score"]


def test_metrics_count_flagged_boxes_and_report_accuracy_without_them():
    def mention(refined_iou: float, flags: list[str]) -> dict:
        return {"category": "square", "category_id": 1, "box": None, "gt_boxes": [[0, 0, 5, 5]],
                "pointing": True, "pointing_0px": True, "pointing_tolerance": 8.6,
                "iou": refined_iou, "threshold_iou": 0.0, "refined_iou": refined_iou,
                "refined_box_flags": flags, "box_hits": [0] * 100}  # fmt: skip

    mentions = [mention(0.9, []), mention(0.8, []), mention(0.1, []),
                mention(0.7, ["covers_image", "low_mass"]), mention(0.0, ["no_edge"])]  # fmt: skip
    records = [{"image_id": 1, "caption": "a square", "words": ["a", "square"],
                "mentions": mentions}]  # fmt: skip
    options = RunOptions(boxes="refined", deletion_steps=0)
    metrics = caption_metrics(records, {1: ["a square"]}, options, instances=True)
    located = metrics["loc_accuracy"]
    assert located["refined_accuracy"] == pytest.approx(3 / 5)  # with the flagged boxes
    assert located["refined_flagged"] == 2 and located["refined_unflagged_count"] == 3
    assert located["refined_unflagged_accuracy"] == pytest.approx(2 / 3)  # without them
    assert located["refined_flagged_accuracy"] == pytest.approx(1 / 2)
    assert located["refined_flags"] == {
        "covers_image": 1, "peak_outside": 0, "low_mass": 1, "no_edge": 1
    }  # fmt: skip
    line = summary({**metrics, "layer": None})
    assert line["refined_flagged"] == 2
    assert line["loc_accuracy_refined_unflagged"] == pytest.approx(2 / 3)
    report = report_text({**metrics, "layer": None})
    assert "refined boxes flagged as guesses: 2 of 5" in report
    assert "refined accuracy without them: 0.667 (3 maps)" in report
