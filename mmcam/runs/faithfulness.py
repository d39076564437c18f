"""How a dataset run judges a map's faithfulness: deletion and insertion AUC (ties in random
orders) and ROAD most and least relevant first, for the map and for two baseline maps, a
random map and a centre Gaussian, on the same image and score, plus the map's support."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from mmcam.evaluation.faithfulness import (
    center_gaussian_map,
    deletion_auc,
    insertion_auc,
    map_support,
    random_map,
)
from mmcam.evaluation.road import road_curve
from mmcam.runs.options import RunOptions

__all__ = ["FAITHFULNESS_KEYS", "baseline_maps", "faithfulness_scores"]

FAITHFULNESS_KEYS = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf")
"""The record keys of the measures, each `{"map", "random", "center"}`: deletion AUC (lower
is more faithful), insertion AUC (higher), ROAD most relevant first (mean change of the score
over the removed shares: lower) and least relevant first (higher)."""


def baseline_maps(heat: Tensor, seed: int) -> dict[str, Tensor]:
    """The map and the maps it is compared with: a random map (seeded by the item) and a
    centre Gaussian, at the map's size."""
    size = tuple(heat.shape)
    return {
        "map": heat,
        "random": random_map(size, seed=seed, device=heat.device),
        "center": center_gaussian_map(size, device=heat.device),
    }


def faithfulness_scores(
    image: Tensor,
    heat: Tensor,
    score: Callable[[Tensor], Tensor],
    options: RunOptions,
    seed: int,
) -> dict[str, Any]:
    """The record entries of one map `heat [H, W]` on `image [C, H, W]`: `map_support` and,
    per `FAITHFULNESS_KEYS` measure the run takes (`options.deletion_steps` > 0: deletion and
    insertion; `options.road_fractions`: ROAD), the map's figures and, unless `options.baselines`
    is off (they are the same for every method of a model), the baselines'.
    Deletion removes pixels to the model's zero input (the data mean for normalised inputs);
    insertion starts from the blurred image (RISE); tie orders and ROAD's noise are seeded by
    the item, so a run gives the same figures on any machine load."""
    maps = baseline_maps(heat, seed) if options.baselines else {"map": heat}
    scored: dict[str, Any] = {"map_support": map_support(heat)}
    steps = options.deletion_steps
    if steps:
        curve = {"steps": steps, "batch_size": steps + 1, "tie_orders": options.tie_orders}
        scored["deletion_auc"] = {
            name: deletion_auc(image, saliency, score, seed=seed, **curve).auc
            for name, saliency in maps.items()
        }
        scored["insertion_auc"] = {
            name: insertion_auc(image, saliency, score, seed=seed, **curve).auc
            for name, saliency in maps.items()
        }
    if options.road_fractions:
        for order in ("morf", "lerf"):
            scored[f"road_{order}"] = {
                name: road_curve(
                    image, saliency, score, order=order, fractions=options.road_fractions,
                    seed=seed,
                ).change
                for name, saliency in maps.items()
            }  # fmt: skip
    return scored
