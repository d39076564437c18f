"""ROAD (remove and debias) equals pytorch-grad-cam's ROADMostRelevantFirst and
ROADLeastRelevantFirst, and its noisy linear imputation fills what it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.road import (
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from mmcam.evaluation.road import ROAD_FRACTIONS, linear_imputation, road_curve, road_removed

ORACLES = {"morf": ROADMostRelevantFirst, "lerf": ROADLeastRelevantFirst}
AVERAGES = {"morf": ROADMostRelevantFirstAverage, "lerf": ROADLeastRelevantFirstAverage}


def classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(3),
        torch.nn.Flatten(), torch.nn.Linear(54, 5),
    ).eval()  # fmt: skip


def inputs() -> tuple[torch.Tensor, np.ndarray]:
    """Two images and their float32 maps, the second with many ties (quarters of [0, 1])."""
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 14, 17, generator=generator)
    cams = torch.rand(2, 14, 17, generator=generator)
    cams[1] = torch.round(cams[1] * 4) / 4
    return images, cams.numpy()


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("percentile", [10, 20, 50, 80, 90])
def test_road_equals_pytorch_grad_cam_with_its_noise(order, percentile):
    model, (images, cams) = classifier(), inputs()
    for row, target in enumerate((1, 3)):
        torch.manual_seed(7)  # the oracle draws its imputation's noise from the global generator
        expected = ORACLES[order](percentile)(
            images[row : row + 1], cams[row : row + 1], [ClassifierOutputTarget(target)], model
        )
        curve = road_curve(
            images[row], torch.from_numpy(cams[row]), lambda x, t=target: model(x)[:, t],
            order=order, fractions=[1 - percentile / 100], seed=7,
        )  # fmt: skip
        assert float(curve.scores[0] - curve.original) == pytest.approx(expected[0], abs=1e-5)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_averaged_over_shares_equals_pytorch_grad_cams_average(order):
    model, (images, cams) = classifier(), inputs()
    for row, target in enumerate((1, 3)):
        torch.manual_seed(5)
        expected = AVERAGES[order]()(
            images[row : row + 1], cams[row : row + 1], [ClassifierOutputTarget(target)], model
        )
        # The oracle goes through percentiles 10 .. 90, i.e. removes 0.9 .. 0.1: the same
        # noise comes from one generator drawn in that order.
        curve = road_curve(
            images[row], torch.from_numpy(cams[row]), lambda x, t=target: model(x)[:, t],
            order=order, fractions=ROAD_FRACTIONS[::-1], seed=5,
        )  # fmt: skip
        assert curve.change == pytest.approx(expected[0], abs=1e-5)


def test_imputation_of_a_plane_is_the_plane():
    """The 8-neighbour weighted mean of a linear function is the function, so a hole in a
    plane (away from the borders) fills back exactly, noise off."""
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(15.0), indexing="ij")
    plane = torch.stack([0.5 + 0.1 * x - 0.05 * y, 0.2 * y, torch.full_like(x, 0.7)])
    missing = torch.zeros(12, 15, dtype=torch.bool)
    missing[3:9, 4:11] = True
    filled = linear_imputation(plane, missing, noise=0.0)
    torch.testing.assert_close(filled, plane, rtol=0, atol=1e-5)
    noisy = linear_imputation(plane, missing, noise=0.01, generator=torch.Generator())
    assert torch.equal(noisy[:, ~missing], plane[:, ~missing])  # known pixels untouched
    assert 0 < float((noisy - plane).abs().max()) < 0.1


def test_imputation_with_nothing_known_gives_the_zero_input_not_nan():
    filled = linear_imputation(torch.rand(3, 5, 6), torch.ones(5, 6, dtype=torch.bool), noise=0)
    assert torch.equal(filled, torch.zeros(3, 5, 6))


def test_road_removes_the_share_most_or_least_relevant_first():
    heat = torch.arange(100, dtype=torch.float32).view(10, 10) / 99
    removed = road_removed(heat, "morf", [0.2, 0.5])
    assert removed.sum(dim=(1, 2)).tolist() == [20, 50]
    assert bool(removed[0].flatten()[80:].all())  # the 20 largest values
    least = road_removed(heat, "lerf", [0.2])
    assert bool(least[0].flatten()[:20].all()) and int(least[0].sum()) == 20
    with pytest.raises(ValueError, match="order must be"):
        road_removed(heat, "most", [0.2])
