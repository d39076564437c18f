"""Deletion and insertion break a map's ties at random (seeded) and average over orders, so the
metric, not the pixel grid's raster order, never decides where a sparse map's evidence ends."""

from __future__ import annotations

import pytest
import torch

from mmcam.evaluation.faithfulness import (
    deletion_auc,
    insertion_auc,
    map_support,
    pixel_orders,
    random_map,
)

SIDE = 16
ROWS = torch.arange(SIDE, 0, -1, dtype=torch.float32)  # row weights 16 .. 1: the top counts most


def top_heavy_score(images: torch.Tensor) -> torch.Tensor:
    """A score that raster order games: the row-weighted mean, the top rows weigh most."""
    weights = ROWS[:, None].expand(SIDE, SIDE)
    return (images[:, 0] * weights).sum(dim=(1, 2)) / weights.sum()


def sparse_map() -> torch.Tensor:
    """Support: a 2x2 block in the middle (1/64 of the pixels); zero elsewhere, all tied."""
    heat = torch.zeros(SIDE, SIDE)
    heat[7:9, 7:9] = 1.0
    return heat


def expected_deletion_auc(steps: int) -> float:
    """The AUC when the support goes first and the ties go in a uniformly random order: on an
    all-ones image the score is linear in the pixels, so its mean after deleting n of the tied
    pixels is (W - W_support - (n - 4) / (HW - 4) · W_ties) / W."""
    weights = ROWS[:, None].expand(SIDE, SIDE).double()
    total, support = float(weights.sum()), float(weights[7:9, 7:9].sum())
    ties = total - support
    n_pix = SIDE * SIDE
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * n_pix / steps)
    scores = []
    for n in counts.tolist():
        removed_support = support * min(n, 4) / 4
        removed_ties = ties * max(n - 4, 0) / (n_pix - 4)
        scores.append((total - removed_support - removed_ties) / total)
    return float(torch.trapezoid(torch.tensor(scores), counts / n_pix))


@pytest.mark.parametrize("curve", [deletion_auc, insertion_auc])
def test_a_sparse_maps_curve_does_not_depend_on_the_raster_order_of_its_ties(curve):
    image = torch.ones(1, SIDE, SIDE)
    heat = sparse_map()
    options = {"steps": 16, "baseline": "zero", "tie_orders": 64, "seed": 0}
    upright = curve(image, heat, top_heavy_score, **options)
    # Upside down, the same map on the same image: only the raster order of the ties changed
    # (the score now weighs the bottom rows most). Raster order gave 0.35 and 0.65.
    flipped = curve(image, heat, lambda x: top_heavy_score(x.flip(-2)), **options)
    assert upright.auc == pytest.approx(flipped.auc, abs=0.01)
    expected = expected_deletion_auc(16)
    if curve is insertion_auc:
        expected = 1 - expected  # inserting onto zeros mirrors deleting to zeros
    assert upright.auc == pytest.approx(expected, abs=0.01)


def test_ties_are_broken_the_same_way_for_the_same_seed_only():
    image = torch.ones(1, SIDE, SIDE)
    first = deletion_auc(image, sparse_map(), top_heavy_score, steps=8, tie_orders=2, seed=3)
    again = deletion_auc(image, sparse_map(), top_heavy_score, steps=8, tie_orders=2, seed=3)
    other = deletion_auc(image, sparse_map(), top_heavy_score, steps=8, tie_orders=2, seed=4)
    assert torch.equal(first.scores, again.scores)
    assert not torch.equal(first.scores, other.scores)
    orders = pixel_orders(sparse_map(), orders=3, seed=0)
    assert orders.shape == (3, SIDE * SIDE)
    assert all(sorted(row[:4].tolist()) == [119, 120, 135, 136] for row in orders)  # support 1st
    assert len({tuple(row.tolist()) for row in orders}) == 3  # a new order of the ties per row


def test_the_curve_reports_the_maps_support_and_its_tie_orders():
    heat = sparse_map()
    curve = deletion_auc(torch.ones(1, SIDE, SIDE), heat, top_heavy_score, steps=4, tie_orders=3)
    assert curve.support == map_support(heat) == 4 / 256
    assert curve.tie_orders == 3
    assert map_support(random_map((8, 8), seed=0)) == 1.0


def test_steps_that_cut_no_ties_are_scored_once():
    calls = []

    def counting(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        return top_heavy_score(images)

    image = torch.rand(1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    distinct = torch.arange(SIDE * SIDE, dtype=torch.float32).view(SIDE, SIDE)
    one = deletion_auc(image, distinct, counting, steps=8, tie_orders=1, batch_size=100)
    many = deletion_auc(image, distinct, counting, steps=8, tie_orders=5, batch_size=100)
    assert calls == [9, 9]  # no tie to break: every order is the same
    assert many.auc == one.auc
    calls.clear()
    halves = (torch.arange(SIDE)[:, None] < SIDE // 2).float().expand(SIDE, SIDE)  # two ties
    deletion_auc(image, halves, counting, steps=8, tie_orders=5, batch_size=100)
    # Steps 1-3 and 5-7 cut a tie (5 orders each); 0, 4 (between the halves) and 8 do not.
    assert calls == [3 + 6 * 5]
