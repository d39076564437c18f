"""Metrics that judge maps, boxes, captions and answers.

Boxes are COCO ``[x, y, w, h]`` pixels with the pixel convention of :mod:`mmcam.localize`
(pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``; a box over columns 10..19 has x=10, w=10).
A box argument may be a :class:`~mmcam.localize.Box`, four numbers, or a tensor ``[4]``;
a boxes argument may also be a sequence of those or a tensor ``[K, 4]``.

Maps are ``[H, W]`` (or ``[N, H, W]``) tensors, normally in [0, 1]; an all-zero map is
"empty". Functions taking ``image_size(s)`` resize maps to the original image first,
exactly as :func:`mmcam.localize.boxes_from_map` does.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from nltk.translate.bleu_score import corpus_bleu

from mmcam.localize import (
    Box,
    _as_array,
    _boxes_from_array,
    _per_map_sizes,
    resize_map,
)

__all__ = [
    "CausalCurve",
    "LocalizationAccuracy",
    "MaxBoxAcc",
    "PointingGame",
    "VQAReport",
    "blur_image",
    "box_iou",
    "box_iou_matrix",
    "caption_bleu",
    "center_gaussian_map",
    "deletion_auc",
    "energy_in_box",
    "insertion_auc",
    "localization_accuracy",
    "max_box_acc",
    "normalize_answer",
    "pointing_game",
    "random_map",
    "vqa_accuracy",
    "vqa_evaluate",
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

    IoU = |A ∩ B| / |A ∪ B| with areas ``w * h`` (COCO). Two empty boxes have IoU 0.
    """
    a, b = _as_boxes(boxes_a), _as_boxes(boxes_b)  # [N, 4], [M, 4]
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    hi = torch.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=-1)  # [N, M]
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(inter))


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
    sizes = _per_map_sizes(image_sizes, maps.shape[0])
    hits = np.zeros(len(thresholds))
    for i, m in enumerate(maps):
        heat = _as_array(resize_map(m, None if sizes is None else sizes[i]))  # resized once
        gt = _as_boxes(gt_boxes[i])
        if len(gt) == 0:
            raise ValueError(f"image {i} has no ground-truth box; leave such images out")
        boxes = [_boxes_from_array(heat, t, "largest", 1) for t in thresholds]
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
    tolerance: float
    per_map: list[bool]
    points: list[tuple[int, int] | None] = field(default_factory=list)
    """(x, y) column and row of each map's maximum, None for an empty map."""


def pointing_game(
    maps: torch.Tensor,
    gt_boxes: BoxesLike | Sequence[BoxesLike],
    tolerance: float = 15,
    *,
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> PointingGame:
    """Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop").

    A hit when the centre ``(c + 0.5, r + 0.5)`` of the map's maximum pixel lies within
    ``tolerance`` px (Euclidean) of a ground-truth box ``[x, x+w] x [y, y+h]``; the paper's
    15 px suits ~224 px images, use 0 (the pixel must be inside the box) for small images.
    Ties go to the first maximum in row-major order; an all-zero map points nowhere: a miss.

    ``maps`` is ``[H, W]`` with ``gt_boxes`` the boxes of that image, or ``[N, H, W]`` with
    one collection of boxes per map.
    """
    single = maps.dim() == 2
    maps = _maps_batch(maps)
    per_map_gt = [gt_boxes] if single else list(gt_boxes)  # type: ignore[arg-type]
    if len(per_map_gt) != maps.shape[0]:
        raise ValueError(f"{len(per_map_gt)} ground-truth entries for {maps.shape[0]} maps")
    if tolerance < 0:
        raise ValueError(f"tolerance is a distance in pixels >= 0, got {tolerance}")
    sizes = _per_map_sizes(image_sizes, maps.shape[0])
    per_map: list[bool] = []
    points: list[tuple[int, int] | None] = []
    for i, m in enumerate(maps):
        m = resize_map(m, None if sizes is None else sizes[i])
        gt = _as_boxes(per_map_gt[i])
        if not torch.isfinite(m).all():
            raise ValueError(f"map {i} holds NaN or inf values")
        if not float(m.max()) > 0:
            per_map.append(False)
            points.append(None)
            continue
        r, c = divmod(int(torch.argmax(m)), m.shape[-1])
        px, py = c + 0.5, r + 0.5
        dx = torch.clamp(torch.maximum(gt[:, 0] - px, px - (gt[:, 0] + gt[:, 2])), min=0)
        dy = torch.clamp(torch.maximum(gt[:, 1] - py, py - (gt[:, 1] + gt[:, 3])), min=0)
        dist = torch.sqrt(dx**2 + dy**2)
        per_map.append(bool(len(gt)) and bool((dist <= tolerance).any()))
        points.append((c, r))
    hits = sum(per_map)
    return PointingGame(hits / len(per_map), hits, len(per_map) - hits, tolerance, per_map, points)


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


def random_map(
    size: Sequence[int], *, seed: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Baseline: i.i.d. uniform [0, 1) map of ``size = (H, W)`` (or ``(N, H, W)``), seeded."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(size), generator=generator).to(device)


def center_gaussian_map(
    size: Sequence[int], sigma: float = 0.25, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Baseline: centre-bias map ``exp(-((x-W/2)²/(2(σW)²) + (y-H/2)²/(2(σH)²)))``, max 1.

    ``sigma`` is a fraction of each side; coordinates are pixel centres. Photographers
    centre objects, so a method should beat this map to claim it looks at the object.
    """
    height, width = int(size[0]), int(size[1])
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    y = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / (sigma * height)
    x = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / (sigma * width)
    g = torch.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return (g / g.max()).float().to(device)


# ------------------------------------------------------------------ deletion / insertion


def blur_image(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur of ``[C, H, W]`` or ``[B, C, H, W]`` images (RISE's insertion canvas:
    kernel 11, σ = 5), separable, replicate padding so borders keep their colour."""
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images
    if x.dim() != 4:
        raise ValueError(f"images must be [C, H, W] or [B, C, H, W], got {tuple(images.shape)}")
    half = kernel_size // 2
    t = torch.arange(kernel_size, dtype=torch.float64, device=x.device) - half
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype if x.is_floating_point() else torch.float32)
    c = x.shape[1]
    x = x.float() if not x.is_floating_point() else x
    x = F.pad(x, (half, half, half, half), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0] if single else x


@dataclass
class CausalCurve:
    """A deletion or insertion curve: the target's score after each step, and its AUC."""

    auc: float
    fractions: torch.Tensor  # [steps + 1] fraction of pixels removed / inserted, 0 .. 1
    scores: torch.Tensor  # [steps + 1]
    mode: str


def _baseline_image(image: torch.Tensor, baseline: str | torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        if baseline.shape != image.shape:
            raise ValueError(
                f"baseline image shape {tuple(baseline.shape)} != image {tuple(image.shape)}"
            )
        return baseline.to(image)
    if baseline == "zero":
        return torch.zeros_like(image)
    if baseline == "blur":
        return blur_image(image)
    raise ValueError(f"baseline must be 'zero', 'blur' or an image tensor, got {baseline!r}")


def _causal_curve(
    mode: str,
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    baseline: str | torch.Tensor,
    batch_size: int,
) -> CausalCurve:
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got shape {tuple(image.shape)}")
    if saliency.shape != image.shape[-2:]:
        raise ValueError(
            f"saliency map {tuple(saliency.shape)} must match the image's [H, W] "
            f"{tuple(image.shape[-2:])}; resize it first (mmcam.localize.resize_map)"
        )
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if not torch.isfinite(saliency).all():
        raise ValueError("the saliency map holds NaN or inf values")
    height, width = saliency.shape
    n_pix = height * width
    base = _baseline_image(image, baseline)
    # Most important first; stable sort so ties keep row-major order.
    order = torch.argsort(saliency.flatten().cpu(), descending=True, stable=True)
    rank = torch.empty(n_pix, dtype=torch.long)
    rank[order] = torch.arange(n_pix)
    rank = rank.to(image.device).view(1, 1, height, width)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * n_pix / steps).long()
    start, end = (image, base) if mode == "deletion" else (base, image)
    scores = []
    with torch.no_grad():
        for lo in range(0, steps + 1, batch_size):
            n_k = counts[lo : lo + batch_size].to(image.device).view(-1, 1, 1, 1)
            changed = rank < n_k  # [b, 1, H, W]: first n_k pixels swapped
            batch = torch.where(changed, end.unsqueeze(0), start.unsqueeze(0))  # [b, C, H, W]
            out = torch.as_tensor(score_fn(batch)).detach().flatten()
            if out.numel() != batch.shape[0]:
                raise ValueError(
                    f"score_fn returned {out.numel()} scores for {batch.shape[0]} images; "
                    "it must return one score per image, shape [B]"
                )
            scores.append(out.double().cpu())
    score_t = torch.cat(scores)
    fractions = counts.double() / n_pix
    auc = float(torch.trapezoid(score_t, fractions))
    return CausalCurve(auc, fractions, score_t, mode)


def deletion_auc(
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 100,
    baseline: str | torch.Tensor = "zero",
    batch_size: int = 32,
) -> CausalCurve:
    """Deletion metric (Petsiuk et al. 2018, RISE): lower is more faithful.

    Pixels are replaced by the baseline (``"zero"``, ``"blur"`` or an image) most salient
    first, ``round(k·HW/steps)`` after step k; ``score_fn(images [B, C, H, W]) -> [B]``
    scores each step's image (called under ``no_grad`` in chunks of ``batch_size``);
    ``AUC = ∫₀¹ score(f) df`` by the trapezoid rule over the fraction f of pixels removed.
    ``image``: ``[C, H, W]``; ``saliency``: ``[H, W]`` at the image's resolution.
    """
    return _causal_curve("deletion", image, saliency, score_fn, steps, baseline, batch_size)


def insertion_auc(
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 100,
    baseline: str | torch.Tensor = "blur",
    batch_size: int = 32,
) -> CausalCurve:
    """Insertion metric (Petsiuk et al. 2018, RISE): higher is more faithful.

    Starts from the baseline canvas (blurred image by default, as in RISE) and puts the
    image's pixels back most salient first; otherwise as :func:`deletion_auc`.
    """
    return _causal_curve("insertion", image, saliency, score_fn, steps, baseline, batch_size)


# ----------------------------------------------------------------------------- captions


def caption_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    *,
    smoothing: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """Corpus BLEU-1..4 (Papineni et al. 2002) via ``nltk.translate.bleu_score.corpus_bleu``.

    ``BLEU-n = BP · exp(Σ_{k≤n} (1/n) log p_k)``, p_k the clipped k-gram precision pooled over
    the corpus, BP the brevity penalty. ``hypotheses[i]`` is a token list; ``references[i]``
    a list of token lists. No smoothing by default (the standard corpus BLEU of captioning
    papers): an order with no match at all gives ~0 (nltk returns ~1e-78 and warns; the
    warning is silenced). Pass e.g.
    ``SmoothingFunction().method1`` for small corpora.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference sets")
    if not hypotheses:
        raise ValueError("no captions to score")
    for i, (hyp, refs) in enumerate(zip(hypotheses, references, strict=True)):
        if isinstance(hyp, str) or any(isinstance(r, str) for r in refs) or not refs:
            raise ValueError(
                f"caption {i}: give token lists (e.g. text.lower().split()), not strings, "
                "and at least one reference per hypothesis"
            )
    weights = {
        "bleu1": (1.0,),
        "bleu2": (0.5, 0.5),
        "bleu3": (1 / 3, 1 / 3, 1 / 3),
        "bleu4": (0.25, 0.25, 0.25, 0.25),
    }
    hyps = [list(h) for h in hypotheses]
    refs = [[list(r) for r in rs] for rs in references]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, w in weights.items():
            out[name] = float(corpus_bleu(refs, hyps, weights=w, smoothing_function=smoothing))
    return out


# ----------------------------------------------------------------------------- VQA

# The official VQA evaluation's normalisation tables (vqaEval.py, Antol et al. 2015 /
# Goyal et al. 2017), rewritten here.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
          ">", "<", "@", "`", ",", "?", "!"]  # fmt: skip
# The official pattern, kept verbatim: "(?!<=" is a look-ahead (not a look-behind), so in
# effect every period not followed by a digit is removed ("1.5" keeps its point).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    """Official rule: a punctuation mark touching a space, or any mark in a text holding a
    digit-comma-digit number ("1,000"), is deleted; otherwise it becomes a space."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        if p + " " in text or " " + p in text or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=32)  # the official code passes re.UNICODE (32)


def _process_digit_article(text: str) -> str:
    """Official rule: lower-case, number words -> digits, drop articles, fix contractions."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def _strip_space(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """The official VQA answer normalisation: whitespace, punctuation, then number words
    to digits, articles removed, contractions restored ("Two dogs." -> "2 dogs")."""
    return _process_digit_article(_process_punctuation(_strip_space(answer)))


def vqa_accuracy(
    answer: str, human_answers: Sequence[str], *, always_normalize: bool = False
) -> float:
    """VQA accuracy of one answer (Antol et al. 2015; the official VQA v2 ``vqaEval.py``).

    ``acc = (1/n) Σ_{i=1..n} min(#{j ≠ i : human_j = answer} / 3, 1)``: min(#humans / 3, 1)
    averaged over the n leave-one-out subsets of the n (= 10) human answers. So 2 of 10
    humans give 0.6, 3 give 0.9 (not 1.0: leaving one of the three out leaves two), 4+ give 1.

    As in the official code, answers are whitespace-stripped and, **only when the humans
    disagree**, both the answer and the human answers are normalised
    (:func:`normalize_answer`); when all humans gave the same string it must match exactly.
    ``always_normalize=True`` normalises in every case (not the official number).
    """
    if isinstance(human_answers, str) or len(human_answers) < 2:
        raise ValueError("human_answers must be a list of at least two answers (VQA v2 has 10)")
    res = _strip_space(answer)
    gts = [_strip_space(a) for a in human_answers]
    if always_normalize or len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        res = normalize_answer(res)
    n = len(gts)
    matches = sum(g == res for g in gts)
    # Leaving out human i: matches - [human_i == answer] of the other n - 1 agree.
    total = sum(min(1.0, (matches - (g == res)) / 3) for g in gts)
    return total / n


@dataclass
class VQAReport:
    """VQA accuracy overall, per answer type and per question type (fractions in [0, 1])."""

    overall: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    per_question: dict[int, float]


def vqa_evaluate(
    predictions: Mapping[int, str] | Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
) -> VQAReport:
    """Evaluate a VQA results file against VQA v2 annotations, as the official tool does.

    ``predictions``: ``{question_id: answer}`` or the results list
    ``[{"question_id", "answer"}]``; ``annotations``: the ``"annotations"`` list of a VQA v2
    file. Every annotated question needs exactly one prediction and vice versa. The official
    tool reports these ×100 rounded to 2 decimals; here they are unrounded fractions.
    """
    if isinstance(predictions, Mapping):
        preds = {int(k): v for k, v in predictions.items()}
    else:
        preds = {}
        for item in predictions:
            qid = int(item["question_id"])
            if qid in preds:
                raise ValueError(f"question {qid} is answered twice in the results")
            preds[qid] = item["answer"]
    ann_ids = [int(a["question_id"]) for a in annotations]
    missing = set(ann_ids) - set(preds)
    extra = set(preds) - set(ann_ids)
    if missing or extra:
        raise ValueError(
            f"results and annotations differ: {len(missing)} questions unanswered "
            f"(e.g. {sorted(missing)[:3]}), {len(extra)} answers to unknown questions "
            f"(e.g. {sorted(extra)[:3]}); evaluate on the annotations of the questions answered"
        )
    per_question: dict[int, float] = {}
    by_answer: dict[str, list[float]] = {}
    by_question: dict[str, list[float]] = {}
    for ann in annotations:
        qid = int(ann["question_id"])
        acc = vqa_accuracy(preds[qid], [a["answer"] for a in ann["answers"]])
        per_question[qid] = acc
        by_answer.setdefault(ann.get("answer_type", "unknown"), []).append(acc)
        by_question.setdefault(ann.get("question_type", "unknown"), []).append(acc)
    if not per_question:
        raise ValueError("no questions to evaluate")
    overall = sum(per_question.values()) / len(per_question)
    return VQAReport(
        overall,
        {k: sum(v) / len(v) for k, v in by_answer.items()},
        {k: sum(v) / len(v) for k, v in by_question.items()},
        per_question,
    )
