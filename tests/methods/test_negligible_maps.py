"""Maps whose terms cancel out are flagged empty with the reason, not stretched to [0, 1]."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcam.core.explanation import FLAT, NEGLIGIBLE
from mmcam.core.tap import Tap
from mmcam.core.targets import ClassLogit
from mmcam.methods.cam import grad_cam


class CellNormalised(nn.Module):
    """Normalises each cell's feature vector before the head: the score is scale-invariant per
    cell, so sum_k dY/dA_k * A_k = 0 at every cell (Euler) and HiResCAM is rounding noise.
    With `epsilon` added to the norm, as models do against a zero norm, the cancellation leaves
    about epsilon / norm of the terms instead, in any dtype."""

    def __init__(self, epsilon: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Linear(16 * 6 * 6, 4)
        self.epsilon = epsilon

    def forward(self, images):
        grid = self.features(images)  # [B, 16, 6, 6]
        return self.head((grid / (grid.norm(dim=1, keepdim=True) + self.epsilon)).flatten(1))


def maps(model, images, method):
    with Tap(model, "features") as tap:
        scores = ClassLogit([0, 1, 2])(model(images))
    return grad_cam(tap, scores, method, size=(12, 12))


def test_hirescam_of_a_cell_normalising_model_is_flagged_negligible_not_stretched():
    torch.manual_seed(0)
    model, images = CellNormalised().eval(), torch.randn(3, 3, 6, 6)
    hires = maps(model, images, "hirescam")
    gradcam = maps(model, images, "gradcam")
    assert hires.raw.amax() < 1e-5 * gradcam.raw.amax()  # noise, and not exactly zero
    assert hires.raw.amax() > 0
    assert hires.empty.tolist() == [True] * 3 and hires.negligible.tolist() == [True] * 3
    assert hires.empty_reason(0) == NEGLIGIBLE
    assert hires.maps.abs().max() == 0
    assert hires.to_dict()["negligible"] == [True] * 3
    assert gradcam.empty.tolist() == [False] * 3 and gradcam.empty_reason(0) is None
    assert gradcam.maps.amax(dim=(1, 2)).tolist() == [1.0] * 3


def test_real_maps_are_not_flagged_and_a_flat_map_says_flat(tiny_classifier):
    model, images = tiny_classifier
    with Tap(model, "features") as tap:
        scores = ClassLogit([0, 1, 2])(model(images))
    hires = grad_cam(tap, scores, "hirescam")
    assert not hires.negligible.any() and not hires.empty.any()
    with Tap(model, "features") as tap:
        scores = ClassLogit(0)(model(images)) * 0  # no dependence: an all-zero gradient
    flat = grad_cam(tap, scores, "gradcam")
    assert flat.empty.all() and not flat.negligible.any()
    assert flat.empty_reason(1) == FLAT


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str
)
def test_the_negligible_flag_holds_in_every_floating_dtype(dtype):
    torch.manual_seed(0)
    model = CellNormalised(epsilon=1e-9).eval().to(dtype)
    images = torch.randn(3, 3, 6, 6).to(dtype)
    hires = maps(model, images, "hirescam")
    gradcam = maps(model, images, "gradcam")
    size = hires.raw.amax(dim=(1, 2)) / gradcam.raw.amax(dim=(1, 2))
    assert (size > 0).all() and (size < 0.06).all()  # float64: 2e-9 to 5e-9 of Grad-CAM's size
    assert hires.negligible.tolist() == [True] * 3 and hires.empty.tolist() == [True] * 3
    assert hires.maps.abs().max() == 0 and hires.empty_reason(2) == NEGLIGIBLE
    assert gradcam.negligible.tolist() == [False] * 3 and gradcam.empty.tolist() == [False] * 3
    assert gradcam.maps.amax(dim=(1, 2)).tolist() == [1.0] * 3
