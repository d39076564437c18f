"""How a dataset run judges one map: its box, pointing, IoU and threshold sweep against the
ground truth, the scores its faithfulness is measured on (`mmcam.runs.faithfulness`), and its
figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from mmcam.boxes.from_maps import boxes_from_map, resize_map
from mmcam.boxes.settings import MapBoxes, map_boxes
from mmcam.core.explanation import Explanation
from mmcam.core.model_state import explaining
from mmcam.core.targets import CaptionLogProb
from mmcam.data.annotations import (
    CocoInstance,
)
from mmcam.data.images import load_image
from mmcam.evaluation.box_metrics import (
    DEFAULT_THRESHOLDS,
    localization_accuracy,
    max_box_acc,
    pointing_game,
)
from mmcam.explainers.captioning import caption_tokens
from mmcam.explainers.vqa import move_to, repeat_rows
from mmcam.methods import registry
from mmcam.runs.options import RunOptions
from mmcam.visualize import PanelRow, map_grid

# ----------------------------------------------------------------------------- scoring


# the kinds of method whose maps are at the input's pixels, not a layer's cells
PIXEL_SPACE_KINDS = ("rule", "perturbation")


def ground_truth_boxes(
    instances: dict[int, list[CocoInstance]] | None,
    image_id: int,
    category_id: int,
    color: str | None,
) -> list[list[float]] | None:
    """Boxes of the image's instances of `category_id` (and of `color`, when both the text and
    the instances name colours); None when there are no instances to compare with."""
    if instances is None:
        return None
    return [
        list(instance.bbox)
        for instance in instances.get(image_id, [])
        if instance.category_id == category_id
        and (color is None or instance.extra.get("color") in (None, color))
    ]


def score_map(
    heat: Tensor,
    size: tuple[int, int],
    truth: list[list[float]] | None,
    options: RunOptions,
    image: object = None,
) -> dict:
    """One map (input resolution) judged in the original image's pixels: its own box at the box
    threshold, the refined box (map + image, when `image`, the original 8-bit RGB, is given),
    the default of the two (`options.boxes`) as `box`, the refined box's flags (why it is a
    guess, `mmcam.boxes.evidence`; its score is the map's evidence inside it), and, when
    the ground truth has boxes,
    pointing (at the run's tolerance, None: 15/224 of the image's shorter side, and at 0 px),
    each box's IoU and the hits of the threshold sweep (`DEFAULT_THRESHOLDS`, IoU >= 0.5)."""
    heat = resize_map(heat.detach().float().cpu(), size)
    settings = options.box_settings()
    if image is None:
        if options.boxes == "refined":
            raise ValueError("refined boxes need the image: pass image= to score_map")
        own = boxes_from_map(heat, options.box_threshold)
        found = MapBoxes(own[0] if own else None, None, own[0] if own else None, not own)
    else:
        found = map_boxes(heat, image, settings)
    scored: dict[str, Any] = {
        "box": found.box.to_list() if found.box else None,
        "box_score": found.box.score if found.box else None,
        "box_refined": options.boxes == "refined",
        "threshold_box": found.threshold.to_list() if found.threshold else None,
        "threshold_box_score": found.threshold.score if found.threshold else None,
        "refined_box": found.refined.to_list() if found.refined else None,
        "refined_box_score": found.refined.score if found.refined else None,
        "refined_box_flags": list(found.refined.flags) if found.refined else None,
        "flat_map": found.flat,
        "gt_boxes": truth,
    }
    if truth:
        point = pointing_game(heat, truth, options.pointing_tolerance)
        scored["peak"] = point.points[0]
        scored["pointing"] = point.per_map[0]
        scored["pointing_tolerance"] = point.tolerances[0]
        scored["pointing_0px"] = pointing_game(heat, truth, 0).per_map[0]
        for name, box in (("threshold", found.threshold), ("refined", found.refined)):
            scored[f"{name}_iou"] = localization_accuracy([[box] if box else []], [truth]).ious[0]
        scored["iou"] = scored[f"{options.boxes}_iou"]
        sweep = max_box_acc(heat[None], [truth], DEFAULT_THRESHOLDS)
        scored["box_hits"] = [int(hit) for hit in sweep.accuracies]
    return scored


def stored_maps(explained: Explanation, row: int, count: int | None = None) -> np.ndarray:
    """What `maps.npz` keeps of item `row`'s first `count` maps: the raw maps at layer
    resolution (float32), or for a pixel-space method (a ReLU rule's or a perturbation's) its
    [0, 1] maps at input resolution (float16: the signed [3, H, W] attributions would take six
    times the space)."""
    if registry.get(explained.method).kind in PIXEL_SPACE_KINDS:
        return explained.maps[row, :count].half().cpu().numpy()
    return explained.raw[row, :count].float().cpu().numpy()


def caption_score(model: nn.Module, caption: list[int]) -> Callable[[Tensor], Tensor]:
    """images `[N, 3, H, W]` -> log p(caption | image) `[N]`, teacher-forced (words and EOS)."""

    def score(images: Tensor) -> Tensor:
        tokens, counts = caption_tokens(
            [caption] * images.shape[0],
            model.bos_index,
            model.eos_index,
            model.pad_index,
            images.device,
        )
        lengths = counts + 1
        with explaining(model, images.device):
            logits = model.decode_logits(model.encode(images), tokens, lengths)
        return CaptionLogProb(tokens, lengths)(logits)

    return score


def answer_score(model: nn.Module, question: str, answer: int) -> Callable[[Tensor], Tensor]:
    """images `[N, 3, H, W]` -> the logit of answer index `answer` to `question` `[N]`."""
    tokens = model.tokenize([question])

    def score(images: Tensor) -> Tensor:
        rows = move_to(repeat_rows(tokens, images.shape[0]), images.device)
        with explaining(model, images.device):
            return model(images, rows)[:, answer]

    return score


def save_run_figure(path: Path, image_file: Path, rows: list[PanelRow], title: str) -> None:
    """The figure via a temporary file and a rename, like every other output."""
    temporary = path.with_name(f".{path.stem}.tmp.png")
    map_grid(load_image(image_file), rows, temporary, suptitle=title)
    temporary.replace(path)
