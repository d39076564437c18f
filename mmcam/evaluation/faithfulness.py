"""Faithfulness: deletion and insertion curves (Petsiuk et al. 2018) of a map, and the
baseline maps (random, centre Gaussian) they are compared with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "CausalCurve",
    "blur_image",
    "center_gaussian_map",
    "deletion_auc",
    "insertion_auc",
    "map_support",
    "pixel_orders",
    "random_map",
]


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
    """A deletion or insertion curve: the target's score after each step, and its AUC.

    ``scores`` and ``auc`` are means over ``tie_orders`` random orders of the map's tied
    pixels; ``support`` is the map's share of non-zero pixels (below 1, the rest is tied)."""

    auc: float
    fractions: torch.Tensor  # [steps + 1] fraction of pixels removed / inserted, 0 .. 1
    scores: torch.Tensor  # [steps + 1]
    mode: str
    support: float = 1.0
    tie_orders: int = 1


def map_support(saliency: torch.Tensor) -> float:
    """Share of a map's pixels that are not zero: the part whose order the map decides."""
    return float((saliency != 0).double().mean()) if saliency.numel() else 0.0


def pixel_orders(saliency: torch.Tensor, orders: int = 1, seed: int = 0) -> torch.Tensor:
    """``[orders, H·W]`` flat pixel indices, most salient first; tied pixels in a random
    order, a new one per row (seeded), so ties never fall back on raster order."""
    if orders < 1:
        raise ValueError(f"orders must be >= 1, got {orders}")
    flat = saliency.detach().flatten().cpu()
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(orders):
        shuffle = torch.randperm(flat.numel(), generator=generator)
        rows.append(shuffle[torch.argsort(flat[shuffle], descending=True, stable=True)])
    return torch.stack(rows)


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


def check_saliency(image: torch.Tensor, saliency: torch.Tensor) -> None:
    """Raise unless ``image`` is ``[C, H, W]`` and ``saliency`` a finite ``[H, W]`` map."""
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got shape {tuple(image.shape)}")
    if saliency.shape != image.shape[-2:]:
        raise ValueError(
            f"saliency map {tuple(saliency.shape)} must match the image's [H, W] "
            f"{tuple(image.shape[-2:])}; resize it first (mmcam.core.box.resize_map)"
        )
    if not torch.isfinite(saliency).all():
        raise ValueError("the saliency map holds NaN or inf values")


def scores_of(
    score_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """``score_fn(images [B, C, H, W])`` as ``[B]`` float64 on the CPU, checked."""
    out = torch.as_tensor(score_fn(images)).detach().flatten()
    if out.numel() != images.shape[0]:
        raise ValueError(
            f"score_fn returned {out.numel()} scores for {images.shape[0]} images; "
            "it must return one score per image, shape [B]"
        )
    return out.double().cpu()


def _causal_curve(
    mode: str,
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    baseline: str | torch.Tensor,
    batch_size: int,
    tie_orders: int,
    seed: int,
) -> CausalCurve:
    check_saliency(image, saliency)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    height, width = saliency.shape
    n_pix = height * width
    base = _baseline_image(image, baseline)
    orders = pixel_orders(saliency, tie_orders, seed)  # [S, HW]
    rank = torch.empty_like(orders)
    rank.scatter_(1, orders, torch.arange(n_pix).expand_as(orders))
    rank = rank.to(image.device).view(tie_orders, 1, height, width)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * n_pix / steps).long()
    # A step whose count cuts through a group of tied values depends on the tie order: it is
    # scored once per order; every other step changes the same pixels in all orders.
    ranked = saliency.detach().flatten().cpu()[orders[0]]
    inside = (counts > 0) & (counts < n_pix)
    cut = torch.zeros(steps + 1, dtype=torch.bool)
    cut[inside] = ranked[counts[inside] - 1] == ranked[counts[inside]]
    jobs = [(k, s) for k in range(steps + 1) for s in range(tie_orders if cut[k] else 1)]
    start, end = (image, base) if mode == "deletion" else (base, image)
    scores = torch.empty(steps + 1, tie_orders, dtype=torch.float64)
    with torch.no_grad():
        for lo in range(0, len(jobs), batch_size):
            chunk = jobs[lo : lo + batch_size]
            n_k = counts[[k for k, _ in chunk]].to(image.device).view(-1, 1, 1, 1)
            changed = rank[[s for _, s in chunk]] < n_k  # [b, 1, H, W]: first n_k swapped
            batch = torch.where(changed, end.unsqueeze(0), start.unsqueeze(0))  # [b, C, H, W]
            for (k, s), value in zip(chunk, scores_of(score_fn, batch), strict=True):
                scores[k, s] = value
    scores[~cut] = scores[~cut, :1]  # the same pixels in every order
    score_t = scores.mean(dim=1)
    fractions = counts.double() / n_pix
    auc = float(torch.trapezoid(score_t, fractions))
    return CausalCurve(auc, fractions, score_t, mode, map_support(saliency), tie_orders)


def deletion_auc(
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 100,
    baseline: str | torch.Tensor = "zero",
    batch_size: int = 32,
    tie_orders: int = 4,
    seed: int = 0,
) -> CausalCurve:
    """Deletion metric (Petsiuk et al. 2018, RISE): lower is more faithful.

    Pixels are replaced by the baseline (``"zero"``, ``"blur"`` or an image) most salient
    first, ``round(k·HW/steps)`` after step k; ``score_fn(images [B, C, H, W]) -> [B]``
    scores each step's image (called under ``no_grad`` in chunks of ``batch_size``);
    ``AUC = ∫₀¹ score(f) df`` by the trapezoid rule over the fraction f of pixels removed.
    ``image``: ``[C, H, W]``; ``saliency``: ``[H, W]`` at the image's resolution.

    Tied pixels (a sparse map's zeros, a blocky map's blocks) are removed in a random order,
    and the curve is the mean over ``tie_orders`` orders drawn from ``seed``: the metric, not
    raster order, would otherwise decide where a sparse map's evidence runs out. Steps that
    cut no group of ties are scored once. Deterministic given ``seed``.
    """
    return _causal_curve(
        "deletion", image, saliency, score_fn, steps, baseline, batch_size, tie_orders, seed
    )


def insertion_auc(
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 100,
    baseline: str | torch.Tensor = "blur",
    batch_size: int = 32,
    tie_orders: int = 4,
    seed: int = 0,
) -> CausalCurve:
    """Insertion metric (Petsiuk et al. 2018, RISE): higher is more faithful.

    Starts from the baseline canvas (blurred image by default, as in RISE) and puts the
    image's pixels back most salient first, ties in random orders; otherwise as
    :func:`deletion_auc`.
    """
    return _causal_curve(
        "insertion", image, saliency, score_fn, steps, baseline, batch_size, tie_orders, seed
    )
