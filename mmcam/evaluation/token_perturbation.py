"""The perturbation test of attention-model explanations (Chefer, Gur & Wolf 2021): remove a
transformer's input tokens in the order of their relevance and follow the model's score.

Positive perturbation removes the most relevant tokens first (a faithful map makes the score
fall fast: lower area is better); negative perturbation the least relevant first (the score
should hold: higher is better). Tokens are removed at the fractions `REMOVAL_STEPS` of the
removable ones; tied relevance is ordered at random under a seed, as deletion's tied pixels
(`faithfulness.pixel_orders`), so the token order never decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcam.evaluation.faithfulness import pixel_orders

__all__ = ["REMOVAL_STEPS", "curve_auc", "kept_tokens"]

REMOVAL_STEPS = (0.0, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def kept_tokens(
    relevance: Tensor,
    steps: Sequence[float] = REMOVAL_STEPS,
    *,
    positive: bool = True,
    removable: Tensor | None = None,
    seed: int = 0,
) -> Tensor:
    """Which tokens are left at each step, `[S, n]` (1 kept, 0 removed).

    Args:
        relevance: each token's relevance `[n]`.
        steps: the fractions of the removable tokens removed, one row each.
        positive: remove the most relevant first (else the least relevant first).
        removable: `[n]` bool, the tokens that may be removed (the others, such as [CLS] and
            [SEP], are always kept); default all.
        seed: orders tied relevance.

    Returns:
        A float tensor `[len(steps), n]`; row s removes round(steps[s] * m) of the m removable
        tokens.
    """
    relevance = relevance.detach().flatten().float().cpu()
    removable = torch.ones_like(relevance, dtype=torch.bool) if removable is None else removable
    removable = removable.flatten().cpu()
    candidates = torch.nonzero(removable).flatten()
    values = relevance[candidates] if positive else -relevance[candidates]
    order = candidates[pixel_orders(values, 1, seed)[0]]  # the removal order
    kept = torch.ones(len(steps), relevance.numel())
    for row, step in enumerate(steps):
        kept[row, order[: round(step * len(candidates))]] = 0
    return kept


def curve_auc(scores: Sequence[float], steps: Sequence[float] = REMOVAL_STEPS) -> float:
    """The area under the score curve over the removal steps (trapezoid rule)."""
    if len(scores) != len(steps):
        raise ValueError(f"{len(scores)} scores for {len(steps)} removal steps")
    return float(torch.trapezoid(torch.tensor(scores, dtype=torch.float64),
                                 torch.tensor(steps, dtype=torch.float64)))  # fmt: skip
