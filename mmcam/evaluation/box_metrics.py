"""Metrics that judge maps, boxes, captions and answers.

Boxes are COCO ``[x, y, w, h]`` pixels with the pixel convention of :mod:`mmcam.core.box`
(pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``; a box over columns 10..19 has x=10, w=10).
A box argument may be a :class:`~mmcam.core.box.Box`, four numbers, or a tensor ``[4]``;
a boxes argument may also be a sequence of those or a tensor ``[K, 4]``.

Maps are ``[H, W]`` (or ``[N, H, W]``) tensors, normally in [0, 1]; an all-zero map is
"empty". Functions taking ``image_size(s)`` resize maps to the original image first,
exactly as :func:`mmcam.boxes.from_maps.boxes_from_map` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import torch
from torchvision import ops

from mmcam.core.box import Box, component_boxes, map_array, per_map_sizes, resize_map

__all__ = [
    "LocalizationAccuracy",
    "MaxBoxAcc",
    "POINTING_TOLERANCE",
    "PointingGame",
    "box_iou",
    "box_iou_matrix",
    "energy_in_box",
    "localization_accuracy",
    "max_box_acc",
    "pointing_game",
    "scaled_pointing_tolerance",
]


BoxLike: TypeAlias = "Box | Sequence[float] | torch.Tensor"
BoxesLike: TypeAlias = "BoxLike | Sequence[BoxLike] | torch.Tensor"

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(100))
"""MaxBoxAcc sweep: 0.00, 0.01, ..., 0.99 (fractions of each map's maximum), Choe et al.'s grid."""


# ----------------------------------------------------------------------------- boxes


def _as_boxes(boxes: BoxesLike | None) -> torch.Tensor:
    """Any box / collection of boxes -> float64 tensor ``[K, 4]`` (xywh), validated."""
    if boxes is None:
        return torch.zeros(0, 4, dtype=torch.float64)
    if isinstance(boxes, Box):
        rows = [boxes.to_list()]
    elif isinstance(boxes, torch.Tensor | np.ndarray):
        t = torch.as_tensor(boxes, dtype=torch.float64)
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != 4:
            raise ValueError(f"boxes must be [4] or [K, 4] (x, y, w, h), not {tuple(t.shape)}")
        rows = t.tolist()
    elif len(boxes) == 0:
        rows = []
    elif all(isinstance(v, int | float | np.number) for v in boxes):
        rows = [list(boxes)]
    else:
        rows = [b.to_list() if isinstance(b, Box) else _as_boxes(b)[0].tolist() for b in boxes]
    t = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    if t.numel() and not torch.isfinite(t).all():
        raise ValueError(f"boxes hold NaN or inf: {t.tolist()}")
    if (t[:, 2:] < 0).any():
        raise ValueError(
            f"boxes must have width and height >= 0, got {t.tolist()} "
            "(boxes are COCO [x, y, w, h], not [x1, y1, x2, y2])"
        )
    return t


def box_iou_matrix(boxes_a: BoxesLike, boxes_b: BoxesLike) -> torch.Tensor:
    """IoU of every box in ``boxes_a`` with every box in ``boxes_b``: float64 ``[N, M]``.

    IoU = |A ∩ B| / |A ∪ B| with areas ``w * h`` (COCO), by ``torchvision.ops.box_iou``.
    Two empty boxes have IoU 0.
    """
    a, b = _as_boxes(boxes_a), _as_boxes(boxes_b)  # [N, 4], [M, 4]
    corners_a, corners_b = ops.box_convert(a, "xywh", "xyxy"), ops.box_convert(b, "xywh", "xyxy")
    iou = ops.box_iou(corners_a, corners_b)  # [N, M]
    return torch.nan_to_num(iou, nan=0.0)  # 0 / 0: two empty boxes


def box_iou(box_a: BoxLike, box_b: BoxLike) -> float:
    """IoU of two COCO ``[x, y, w, h]`` boxes: |A ∩ B| / |A ∪ B|."""
    a, b = _as_boxes(box_a), _as_boxes(box_b)
    if len(a) != 1 or len(b) != 1:
        raise ValueError("box_iou takes two single boxes; use box_iou_matrix for many")
    return float(box_iou_matrix(a, b)[0, 0])


@dataclass
class LocalizationAccuracy:
    """Fraction of images localised (best IoU >= ``iou_threshold``), with per-image detail."""

    accuracy: float
    iou_threshold: float
    hits: list[bool]
    ious: list[float]


def localization_accuracy(
    pred_boxes: Sequence[BoxesLike | None],
    gt_boxes: Sequence[BoxesLike],
    iou_threshold: float = 0.5,
) -> LocalizationAccuracy:
    """Localisation accuracy (ILSVRC / CAM, Zhou et al. 2016): IoU >= 0.5 with any GT box.

    ``acc = (1/N) Σ_i [max_{p, g} IoU(p, g) >= δ]`` over images i, predicted boxes p (one
    per image for the classic metric; with several the best counts, as in Choe et al.
    2020's MaxBoxAccV2) and ground-truth boxes g. ``None`` or no box is a miss.
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} predictions for {len(gt_boxes)} images")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    hits, ious = [], []
    for i, (pred, gt) in enumerate(zip(pred_boxes, gt_boxes, strict=True)):
        gt_t = _as_boxes(gt)
        if len(gt_t) == 0:
            raise ValueError(f"image {i} has no ground-truth box; leave such images out")
        ious_i = box_iou_matrix(_as_boxes(pred), gt_t)
        best = float(ious_i.max()) if ious_i.numel() else 0.0
        ious.append(best)
        hits.append(best >= iou_threshold)
    if not hits:
        raise ValueError("no images to evaluate")
    return LocalizationAccuracy(sum(hits) / len(hits), iou_threshold, hits, ious)


@dataclass
class MaxBoxAcc:
    """MaxBoxAcc: best box accuracy over a threshold sweep, and the whole sweep."""

    accuracy: float
    threshold: float
    thresholds: list[float]
    accuracies: list[float]
    iou_threshold: float


def max_box_acc(
    maps: torch.Tensor,
    gt_boxes: Sequence[BoxesLike],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    iou_threshold: float = 0.5,
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> MaxBoxAcc:
    """MaxBoxAcc (Choe et al. 2020, "Evaluating Weakly Supervised Object Localization
    Methods Right"): ``max_τ BoxAcc(τ, δ)`` with BoxAcc(τ, δ) the fraction of images whose
    box around the largest component of ``{map > τ · max(map)}`` has IoU >= δ with a GT box.

    Removes the arbitrary choice of τ (0.15 / 0.2) by reporting the best one; the whole
    sweep is returned so a threshold can be chosen on a held-out split. Ties go to the
    smallest τ. ``maps``: ``[N, H, W]``; ``image_sizes`` as in ``boxes_from_maps``.
    """
    if maps.dim() != 3:
        raise ValueError(f"max_box_acc takes [N, H, W] maps, got shape {tuple(maps.shape)}")
    if len(gt_boxes) != maps.shape[0]:
        raise ValueError(f"{len(gt_boxes)} ground-truth entries for {maps.shape[0]} maps")
    thresholds = [float(t) for t in thresholds]
    if not thresholds or not all(0 <= t < 1 for t in thresholds):
        raise ValueError(f"thresholds must be a non-empty list in [0, 1), got {thresholds}")
    sizes = per_map_sizes(image_sizes, maps.shape[0])
    hits = np.zeros(len(thresholds))
    for i, m in enumerate(maps):
        heat = map_array(resize_map(m, None if sizes is None else sizes[i]))  # resized once
        gt = _as_boxes(gt_boxes[i])
        if len(gt) == 0:
            raise ValueError(f"image {i} has no ground-truth box; leave such images out")
        boxes = [component_boxes(heat, t, "largest", 1) for t in thresholds]
        found = [j for j, box in enumerate(boxes) if box]  # an empty map has no box
        if found:
            ious = box_iou_matrix([boxes[j][0] for j in found], gt).amax(dim=1)  # [found]
            hits[found] += (ious >= iou_threshold).numpy()
    accuracies = (hits / maps.shape[0]).tolist()
    best = int(np.argmax(accuracies))  # first maximum: smallest threshold
    return MaxBoxAcc(accuracies[best], thresholds[best], thresholds, accuracies, iou_threshold)


# ----------------------------------------------------------------------------- maps


def _maps_batch(maps: torch.Tensor) -> torch.Tensor:
    if maps.dim() == 2:
        return maps.unsqueeze(0)
    if maps.dim() != 3:
        raise ValueError(f"maps must be [H, W] or [N, H, W], got shape {tuple(maps.shape)}")
    return maps


@dataclass
class PointingGame:
    """Pointing game result: hits, misses, accuracy = hits / (hits + misses)."""

    accuracy: float
    hits: int
    misses: int
    tolerance: float | None
    """The tolerance asked for in pixels; None: scaled with each image (`POINTING_TOLERANCE`)."""
    per_map: list[bool]
    points: list[tuple[int, int] | None] = field(default_factory=list)
    """(x, y) column and row of each map's maximum, None for an empty map."""
    tolerances: list[float] = field(default_factory=list)
    """The tolerance in pixels each map was judged with."""


POINTING_TOLERANCE = 15 / 224
"""Zhang et al.'s 15 px on 224 px inputs, as a fraction of the image's shorter side."""


def scaled_pointing_tolerance(height: int, width: int) -> float:
    """The pointing game's tolerance for an image of `height` x `width` pixels: 15/224 of its
    shorter side (15 px at 224 px, 8.6 px at 128 px), so a hit means the same at any size; a
    fixed 15 px is a quarter of a 64 px image and turns misses into hits."""
    return POINTING_TOLERANCE * min(height, width)


def pointing_game(
    maps: torch.Tensor,
    gt_boxes: BoxesLike | Sequence[BoxesLike],
    tolerance: float | None = None,
    *,
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> PointingGame:
    """Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop").

    A hit when the centre ``(c + 0.5, r + 0.5)`` of the map's maximum pixel lies within
    ``tolerance`` px (Euclidean) of a ground-truth box ``[x, x+w] x [y, y+h]``. The paper's
    15 px was set for 224 px inputs; by default (``None``) the tolerance scales with each
    image, 15/224 of its shorter side (`scaled_pointing_tolerance`, measured on the map after
    resizing to ``image_sizes``); 0 asks for the pixel to be inside the box. Ties go to the
    first maximum in row-major order; an all-zero map points nowhere: a miss.

    ``maps`` is ``[H, W]`` with ``gt_boxes`` the boxes of that image, or ``[N, H, W]`` with
    one collection of boxes per map.
    """
    single = maps.dim() == 2
    maps = _maps_batch(maps)
    per_map_gt = [gt_boxes] if single else list(gt_boxes)  # type: ignore[arg-type]
    if len(per_map_gt) != maps.shape[0]:
        raise ValueError(f"{len(per_map_gt)} ground-truth entries for {maps.shape[0]} maps")
    if tolerance is not None and tolerance < 0:
        raise ValueError(f"tolerance is a distance in pixels >= 0, got {tolerance}")
    sizes = per_map_sizes(image_sizes, maps.shape[0])
    per_map: list[bool] = []
    points: list[tuple[int, int] | None] = []
    tolerances: list[float] = []
    for i, m in enumerate(maps):
        m = resize_map(m, None if sizes is None else sizes[i])
        gt = _as_boxes(per_map_gt[i])
        if not torch.isfinite(m).all():
            raise ValueError(f"map {i} holds NaN or inf values")
        allowed = scaled_pointing_tolerance(*m.shape[-2:]) if tolerance is None else tolerance
        tolerances.append(float(allowed))
        if not float(m.max()) > 0:
            per_map.append(False)
            points.append(None)
            continue
        r, c = divmod(int(torch.argmax(m)), m.shape[-1])
        px, py = c + 0.5, r + 0.5
        dx = torch.clamp(torch.maximum(gt[:, 0] - px, px - (gt[:, 0] + gt[:, 2])), min=0)
        dy = torch.clamp(torch.maximum(gt[:, 1] - py, py - (gt[:, 1] + gt[:, 3])), min=0)
        dist = torch.sqrt(dx**2 + dy**2)
        per_map.append(bool(len(gt)) and bool((dist <= allowed).any()))
        points.append((c, r))
    hits = sum(per_map)
    return PointingGame(
        hits / len(per_map), hits, len(per_map) - hits, tolerance, per_map, points, tolerances
    )


def _box_mask(gt: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool ``[H, W]``: pixels whose centre lies in any box (columns x..x+w-1 for integers)."""
    cx = torch.arange(width, dtype=torch.float64) + 0.5
    cy = torch.arange(height, dtype=torch.float64) + 0.5
    in_x = (cx[None, :] >= gt[:, 0:1]) & (cx[None, :] < gt[:, 0:1] + gt[:, 2:3])  # [K, W]
    in_y = (cy[None, :] >= gt[:, 1:2]) & (cy[None, :] < gt[:, 1:2] + gt[:, 3:4])  # [K, H]
    return (in_y[:, :, None] & in_x[:, None, :]).any(dim=0)


def energy_in_box(
    map: torch.Tensor, gt_boxes: BoxesLike, *, image_size: Sequence[int] | None = None
) -> float:
    """Energy-based pointing game (Wang et al. 2020, Score-CAM): the map's mass inside the boxes.

    ``E = Σ_{p ∈ ∪ boxes} map(p) / Σ_p map(p)``, pixels counted once when boxes overlap.
    An all-zero map has no mass: 0.0.
    """
    if map.dim() != 2:
        raise ValueError(f"energy_in_box takes one [H, W] map, got shape {tuple(map.shape)}")
    m = resize_map(map, image_size).double()
    if not torch.isfinite(m).all() or (m < 0).any():
        raise ValueError("the map must be finite and >= 0 (normalise it to [0, 1] first)")
    total = float(m.sum())
    if total == 0:
        return 0.0
    mask = _box_mask(_as_boxes(gt_boxes), *m.shape).to(m.device)
    return float(m[mask].sum()) / total
