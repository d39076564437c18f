"""Weakly supervised boxes judged as the field judges them: COCO AP (pycocotools' `COCOeval`)
and CorLoc.

Both are taken over the image-category pairs a text names (a caption's category words, the
category a question asks about): the explainer gives a box only for what the model talked
about, so an object no caption or question mentions is not a missed detection. A box for a
named category the image does not hold is a false positive, as in COCO.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mmcam.core.extras import require
from mmcam.evaluation.box_metrics import box_iou_matrix

__all__ = ["box_detection_metrics", "corloc"]


def _pairs_and_truth(
    ground_truth: Sequence[Mapping[str, Any]], named: Iterable[tuple[int, int]]
) -> tuple[set[tuple[int, int]], list[Mapping[str, Any]]]:
    pairs = {(int(image), int(category)) for image, category in named}
    truth = [a for a in ground_truth if (int(a["image_id"]), int(a["category_id"])) in pairs]
    return pairs, truth


def corloc(
    detections: Sequence[Mapping[str, Any]],
    ground_truth: Sequence[Mapping[str, Any]],
    named: Iterable[tuple[int, int]],
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """CorLoc (Deselaers et al. 2010): the share of named image-category pairs holding an
    object of that category whose highest-scoring box of that category has IoU >= 0.5 with
    one of them, pooled over pairs. A pair with no box is a miss; pairs whose category is
    absent from the image are not counted (there is nothing to localise).

    `detections`: COCO results `{"image_id", "category_id", "bbox", "score"}`;
    `ground_truth`: COCO instance annotations (`image_id`, `category_id`, `bbox`);
    `named`: the (image id, category id) pairs the texts named."""
    pairs, truth = _pairs_and_truth(ground_truth, named)
    boxes: dict[tuple[int, int], list] = {}
    for annotation in truth:
        boxes.setdefault((int(annotation["image_id"]), int(annotation["category_id"])), []).append(
            annotation["bbox"]
        )
    top: dict[tuple[int, int], Mapping[str, Any]] = {}
    for detection in detections:
        key = (int(detection["image_id"]), int(detection["category_id"]))
        if key in pairs and (key not in top or detection["score"] > top[key]["score"]):
            top[key] = detection
    hits = sum(
        key in top and float(box_iou_matrix(top[key]["bbox"], gt).max()) >= iou_threshold
        for key, gt in boxes.items()
    )
    count = len(boxes)
    return {"corloc": hits / count if count else None, "hits": hits, "pairs": count}


def _coco_ap(
    detections: Sequence[Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]],
    pairs: set[tuple[int, int]],
) -> list[float | None]:
    """AP, AP50, AP75 of `COCOeval` ("bbox", all areas, 100 detections) over the images and
    categories of `pairs`; None where there is no named object (COCOeval's -1)."""
    require("pycocotools", "coco", "COCO AP")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted({image for image, _ in pairs})
    categories = sorted({category for _, category in pairs})
    annotations = []
    for number, a in enumerate(truth, start=1):
        x, y, w, h = (float(v) for v in a["bbox"])
        annotations.append(
            {
                "id": number,
                "image_id": int(a["image_id"]),
                "category_id": int(a["category_id"]),
                "bbox": [x, y, w, h],
                "area": float(a.get("area", w * h)),
                "iscrowd": int(a.get("iscrowd", 0)),
            }
        )
    results = [
        {
            "image_id": int(d["image_id"]),
            "category_id": int(d["category_id"]),
            "bbox": [float(v) for v in d["bbox"]],
            "score": float(d["score"]),
        }
        for d in detections
        if (int(d["image_id"]), int(d["category_id"])) in pairs
    ]
    if not annotations:
        return [None, None, None]  # no named object: nothing to detect
    if not results:
        return [0.0, 0.0, 0.0]  # objects and not one box: recall 0 (COCOeval's loadRes
        # cannot load an empty results list)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools narrates every step
        coco = COCO()
        coco.dataset = {
            "images": [{"id": image} for image in images],
            "categories": [{"id": category} for category in categories],
            "annotations": annotations,
        }
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.imgIds, evaluation.params.catIds = images, categories
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) if v >= 0 else None for v in np.asarray(evaluation.stats[:3])]


def box_detection_metrics(
    detections: Sequence[Mapping[str, Any]],
    ground_truth: Sequence[Mapping[str, Any]],
    named: Iterable[tuple[int, int]],
) -> dict[str, Any]:
    """COCO AP (IoU 0.50:0.95), AP50, AP75 and CorLoc of weakly supervised boxes over the
    named image-category pairs (see the module's docstring), with the counts behind them:
    `{"coco_ap", "coco_ap50", "coco_ap75", "corloc", "counts": {...}}`. With no named object
    there is nothing to measure and every figure is None; objects but no box give AP 0."""
    pairs, truth = _pairs_and_truth(ground_truth, named)
    ap, ap50, ap75 = _coco_ap(detections, truth, pairs)
    located = corloc(detections, truth, pairs)
    return {
        "coco_ap": ap,
        "coco_ap50": ap50,
        "coco_ap75": ap75,
        "corloc": located["corloc"],
        "counts": {
            "named_pairs": len(pairs),
            "pairs_with_objects": located["pairs"],
            "corloc_hits": located["hits"],
            "boxes": sum((int(d["image_id"]), int(d["category_id"])) in pairs for d in detections),
            "objects": len(truth),
        },
    }
