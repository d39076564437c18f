"""ROAD, remove and debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy
for Attribution Methods"): remove a share of the pixels, most or least relevant first, fill
them by noisy linear imputation so the removal's shape leaks no class information, and score.

The conventions are pytorch-grad-cam's (`ROADMostRelevantFirst`, `ROADLeastRelevantFirst`,
their `...Average` over percentiles), so figures compare with it to 1e-5: removing a share r
most relevant first removes the pixels whose value is >= the 100·(1 − r) percentile (numpy's
linear interpolation) of the float32 map; least relevant first does the same on 1 − map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve

from mmcam.evaluation.faithfulness import check_saliency, scores_of

__all__ = ["ROAD_FRACTIONS", "RoadCurve", "linear_imputation", "road_curve", "road_removed"]

ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Shares of the pixels removed, as pytorch-grad-cam's averages (percentiles 90 .. 10)."""

# (dy, dx, weight): a missing pixel is the weighted mean of its 8 neighbours, sides 1/6 and
# corners 1/12 (the paper's and pytorch-grad-cam's weights, in the latter's order).
NEIGHBOUR_WEIGHTS = (
    (1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12),
    (0, -1, 1 / 6), (-1, -1, 1 / 12), (1, 0, 1 / 6), (-1, 0, 1 / 6),
)  # fmt: skip


def linear_imputation(
    image: torch.Tensor,
    missing: torch.Tensor,
    *,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``image [C, H, W]`` with the ``missing [H, W]`` pixels replaced: each is the weighted
    mean of its in-image neighbours (``NEIGHBOUR_WEIGHTS``, the weights of neighbours outside
    the image dropped), all solved at once as one sparse linear system (scipy's ``spsolve``),
    plus ``noise · N(0, 1)`` per value drawn from ``generator`` ([C, n] in raster order of
    the missing pixels). With every pixel missing there is nothing to impute from: they get
    the model's zero input, plus the noise."""
    if image.dim() != 3 or missing.shape != image.shape[-2:]:
        raise ValueError(
            f"image must be [C, H, W] and missing [H, W], got {tuple(image.shape)} and "
            f"{tuple(missing.shape)}"
        )
    channels, height, width = image.shape
    pixels = image.detach().float().cpu().reshape(channels, -1)  # [C, HW]
    known = ~missing.detach().cpu().bool().flatten()  # [HW]
    indices = torch.nonzero(~known).flatten()  # [n] missing pixels, raster order
    count = int(indices.numel())
    if count == 0:
        return image.clone()
    if count == known.numel():
        solved = torch.zeros(channels, count)
    else:
        solved = torch.from_numpy(_solve(pixels.numpy(), known.numpy(), indices.numpy(), width))
        solved = solved.float().reshape(count, channels).t()  # [C, n]
    if noise:
        solved = solved + noise * torch.randn(solved.shape, generator=generator)
    filled = pixels.clone()
    filled[:, indices] = solved
    return filled.reshape(image.shape).to(image)


def _solve(pixels: np.ndarray, known: np.ndarray, indices: np.ndarray, width: int) -> np.ndarray:
    """The imputation's system ``A x = b``: per missing pixel i, ``-s_i x_i + Σ w_j x_j =
    -Σ w_k v_k`` over its missing neighbours j and known neighbours k, ``s_i`` the weight of
    its in-image neighbours. Returns x, [n, C] float64."""
    height = known.size // width
    count = indices.size
    variable = np.full(known.size, -1, dtype=np.int64)
    variable[indices] = np.arange(count)
    y, x = np.divmod(indices, width)
    diagonal = np.ones(count)
    rhs = np.zeros((count, pixels.shape[0]))
    rows, columns, values = [], [], []
    for dy, dx, weight in NEIGHBOUR_WEIGHTS:
        inside = (y + dy >= 0) & (y + dy < height) & (x + dx >= 0) & (x + dx < width)
        diagonal[~inside] -= weight
        equation = np.flatnonzero(inside)
        neighbour = indices[inside] + dy * width + dx
        given = known[neighbour]
        rhs[equation[given]] -= weight * pixels[:, neighbour[given]].T
        rows.append(equation[~given])
        columns.append(variable[neighbour[~given]])
        values.append(np.full(rows[-1].size, weight))
    rows.append(np.arange(count))
    columns.append(np.arange(count))
    values.append(-diagonal)
    system = csc_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(count, count),
    )
    return np.asarray(spsolve(system, rhs)).reshape(count, -1)


def road_removed(saliency: torch.Tensor, order: str, fractions: Sequence[float]) -> torch.Tensor:
    """``[F, H, W]`` bool: the pixels removed at each share, most (``"morf"``) or least
    (``"lerf"``) relevant first, by pytorch-grad-cam's percentile rule (module docstring);
    ties at the threshold are removed together."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' (most relevant first) or 'lerf', got {order!r}")
    if not all(0 <= r <= 1 for r in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {list(fractions)}")
    key = saliency.detach().float().cpu()
    key = key if order == "morf" else 1 - key
    levels = [round(100 * (1 - r), 10) for r in fractions]
    thresholds = np.atleast_1d(np.percentile(key.numpy(), levels))  # float32, as the oracle's
    return torch.stack([~(key < float(t)) for t in thresholds])


@dataclass
class RoadCurve:
    """The target's score after removing each share of the pixels and imputing them."""

    order: str  # "morf": most relevant first (lower is more faithful); "lerf": least
    fractions: torch.Tensor  # [F] share of pixels removed
    scores: torch.Tensor  # [F] score of each imputed image
    original: float  # score of the intact image

    @property
    def change(self) -> float:
        """Mean over the shares of score − original score: pytorch-grad-cam's
        ``ROAD...Average`` over the same shares."""
        return float((self.scores - self.original).mean())


def road_curve(
    image: torch.Tensor,
    saliency: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    order: str = "morf",
    fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 32,
) -> RoadCurve:
    """ROAD (Rong et al. 2022) of ``saliency [H, W]`` on ``image [C, H, W]``: per share r of
    ``fractions``, remove that share of the pixels (``order`` ``"morf"``: most relevant first,
    a faithful map's score falls fast; ``"lerf"``: least relevant first, it should hold) and
    impute them (:func:`linear_imputation`, noise from one generator seeded by ``seed``, drawn
    share by share); ``score_fn(images [B, C, H, W]) -> [B]`` scores them all under
    ``no_grad`` in chunks of ``batch_size``. Deterministic given ``seed``."""
    check_saliency(image, saliency)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    removed = road_removed(saliency, order, fractions)  # [F, H, W]
    imputed = [linear_imputation(image, r, noise=noise, generator=generator) for r in removed]
    batch = torch.stack([image, *imputed])  # [1 + F, C, H, W]
    with torch.no_grad():
        scores = torch.cat(
            [
                scores_of(score_fn, batch[lo : lo + batch_size])
                for lo in range(0, len(batch), batch_size)
            ]
        )
    fractions_t = torch.tensor([float(r) for r in fractions], dtype=torch.float64)
    return RoadCurve(order, fractions_t, scores[1:], float(scores[0]))
