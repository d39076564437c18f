"""How alike two saliency maps are: the four measures of the sanity checks of Adebayo et al.
(NeurIPS 2018, "Sanity Checks for Saliency Maps").

- Spearman rank correlation of the signed maps, and of their absolute values;
- SSIM (scikit-image's `structural_similarity`) of the absolute maps scaled to [0, 1];
- HOG similarity: the Pearson correlation of the histograms of oriented gradients
  (scikit-image's `hog`) of the absolute maps scaled to [0, 1].

A flat map (every pixel equal: the randomised model often gives no gradient at all) has no
ranks and no gradients, so it gets no number: its row is flagged `flat` and its measures are
NaN, never a made-up 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from torch import Tensor

from mmcam.core.extras import require

hog = require("skimage.feature", "sanity", "The sanity checks' HOG similarity").hog
structural_similarity = require(
    "skimage.metrics", "sanity", "The sanity checks' SSIM"
).structural_similarity

MEASURES = ("spearman", "spearman_abs", "ssim", "hog")


@dataclass
class MapSimilarity:
    """One value per compared pair of maps `[R]` for each measure; `flat[r]` when either map of
    pair r is flat (its values are then NaN)."""

    spearman: np.ndarray
    spearman_abs: np.ndarray
    ssim: np.ndarray
    hog: np.ndarray
    flat: np.ndarray

    def means(self) -> dict[str, float | None]:
        """Each measure's mean over the pairs that are not flat (None when all are), and the
        share of flat pairs."""
        kept = ~self.flat
        means: dict[str, float | None] = {
            name: float(getattr(self, name)[kept].mean()) if kept.any() else None
            for name in MEASURES
        }
        means["flat"] = float(self.flat.mean()) if len(self.flat) else 0.0
        return means


def is_flat(maps: Tensor) -> Tensor:
    """`[R]`: map r `[R, ...]` has one value everywhere (within float precision)."""
    flat = maps.reshape(maps.shape[0], -1).double()
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    return spread <= 1e-12 * flat.abs().amax(dim=1).clamp(min=1e-30)


def spearman(a: Tensor, b: Tensor) -> np.ndarray:
    """Spearman rank correlation of each row pair of `a`, `b` `[R, ...]` (ties: mean ranks, as
    scipy's `spearmanr`): the Pearson correlation of the rank vectors. NaN for a flat row."""
    ranks_a = rankdata(a.reshape(a.shape[0], -1).double().cpu().numpy(), axis=1)
    ranks_b = rankdata(b.reshape(b.shape[0], -1).double().cpu().numpy(), axis=1)
    return _pearson(ranks_a, ranks_b)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of `[R, F]` arrays; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (a * b).sum(axis=1) / norms, np.nan)


def _unit_scaled(maps: Tensor) -> np.ndarray:
    """|maps| divided by each map's maximum `[R, H, W]` (a flat zero map stays zero)."""
    magnitude = maps.abs().double()
    peak = magnitude.reshape(maps.shape[0], -1).amax(dim=1).clamp(min=1e-30)
    return (magnitude / peak[:, None, None]).cpu().numpy()


def hog_features(maps: np.ndarray) -> np.ndarray:
    """The HOG descriptor of each map `[R, H, W]` in [0, 1] (9 orientations, cells of 1/8 of the
    shorter side, 2 x 2 cell blocks): `[R, F]`."""
    side = max(min(maps.shape[-2:]) // 8, 1)
    return np.stack(
        [hog(m, orientations=9, pixels_per_cell=(side, side), cells_per_block=(2, 2)) for m in maps]
    )


def map_similarity(trained: Tensor, randomised: Tensor) -> MapSimilarity:
    """The four measures between each trained map and the randomised model's map of the same
    target, `[R, H, W]` each (signed maps: the absolute value is taken where a measure needs
    it)."""
    if trained.shape != randomised.shape or trained.dim() != 3:
        raise ValueError(
            f"maps must both be [R, H, W] of one shape, got {tuple(trained.shape)} "
            f"and {tuple(randomised.shape)}"
        )
    flat = (is_flat(trained) | is_flat(randomised)).cpu().numpy()
    signed = spearman(trained, randomised)
    absolute = spearman(trained.abs(), randomised.abs())
    a, b = _unit_scaled(trained), _unit_scaled(randomised)
    ssim = np.array(
        [structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b, strict=True)]
    )
    hog_similarity = _pearson(hog_features(a), hog_features(b))
    values = [np.where(flat, np.nan, v) for v in (signed, absolute, ssim, hog_similarity)]
    return MapSimilarity(*values, flat=flat)


def as_numbers(values: np.ndarray) -> list[float | None]:
    """A measure's values for JSON: NaN (a flat pair) becomes None."""
    return [None if np.isnan(v) else float(v) for v in values]
