"""The sanity check's box measure: default boxes from a model whose map ignores its weights stay
accurate with the weights randomised and are reported as not depending on the model; boxes from
a map made by the weights fall."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from mmcam.boxes.settings import BoxSettings
from mmcam.studies.sanity import classifier_rows
from mmcam.studies.sanity_boxes import BoxedRow, BoxSanity, box_randomization
from mmcam.studies.sanity_report import box_table

CORNERS = [(4, 6), (30, 8), (10, 34), (36, 36)]  # each image's square: left, top


def squares(
    corners: list[tuple[int, int]] = CORNERS,
) -> tuple[torch.Tensor, list[np.ndarray], list[list[list[float]]]]:
    """64 x 64 dark-noise images, each with one red 20 x 20 square, and the squares' boxes."""
    rng = np.random.default_rng(3)
    pictures, truths = [], []
    for left, top in corners:
        image = Image.fromarray(rng.integers(0, 20, (64, 64, 3), dtype=np.uint8))
        ImageDraw.Draw(image).rectangle([left, top, left + 19, top + 19], fill=(230, 20, 20))
        pictures.append(np.array(image))
        truths.append([[float(left), float(top), 20.0, 20.0]])
    images = torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in pictures])
    return images, pictures, truths


class PixelsThenHead(nn.Module):
    """The explained layer is the image itself and the score the sum of its pixels, which the
    head never changes: the map is the image whatever the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = self.features(x)  # [B, 3, H, W]
        return pixels.sum(dim=(1, 2, 3))[:, None] + 0 * self.head(pixels.mean(dim=(2, 3)))


class Ones(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x[:, :1])  # [B, 1, H, W]


class WeightsAsMap(nn.Module):
    """The explained layer is all ones and the score the head's weighted sum of it, so the map is
    the head's weights: trained, one on the square at `corner` and zero elsewhere."""

    def __init__(self, corner: tuple[int, int]) -> None:
        super().__init__()
        self.features = Ones()
        self.head = nn.Linear(64 * 64, 1)
        with torch.no_grad():
            weight = torch.zeros(64, 64)
            weight[corner[1] : corner[1] + 20, corner[0] : corner[0] + 20] = 1.0
            self.head.weight.copy_(weight.flatten()[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def measure(model: nn.Module, corners: list[tuple[int, int]] = CORNERS) -> BoxSanity:
    images, pictures, truths = squares(corners)
    rows = classifier_rows(images, [0] * len(images), "features")
    boxed = [BoxedRow(i, p, t) for i, (p, t) in enumerate(zip(pictures, truths, strict=True))]
    return box_randomization(model, rows, boxed, "hirescam", BoxSettings(), seed=1)


def test_boxes_from_a_map_that_ignores_the_weights_do_not_depend_on_the_model():
    result = measure(PixelsThenHead())
    assert result.steps == ["head"]  # the only layer with parameters: top and all layers
    assert result.accuracy == {"trained": 1.0, "head": 1.0}
    assert not result.depends("head") and not result.depends_on_model
    assert result.metrics()["depends_on_model"] is False
    assert "do NOT depend on the model" in box_table(result)


def test_boxes_from_a_map_the_weights_make_fall_with_them():
    result = measure(WeightsAsMap((22, 22)), [(22, 22)] * 4)
    assert result.accuracy["trained"] == 1.0 and result.accuracy["head"] <= 0.25
    assert result.depends_on_model and result.flagged["trained"] == 0
    assert "the boxes depend on the model" in box_table(result)


def test_the_drop_that_counts_grows_with_the_spread_of_few_maps():
    few = BoxSanity("hirescam", "features", 8, {"trained": 0.75, "top": 0.5, "all": 0.25})
    assert few.drop_needed("top") == pytest.approx(2 * np.sqrt((0.1875 + 0.25) / 8))
    assert not few.depends("top") and few.depends("all")  # 0.25 < 0.66; 0.5 > 0.61
    many = BoxSanity("hirescam", "features", 10_000, {"trained": 0.98, "all": 0.95})
    assert many.drop_needed("all") == 0.1 and not many.depends_on_model  # at least MIN_DROP


def test_no_row_naming_an_object_is_refused():
    images, _, _ = squares()
    rows = classifier_rows(images, [0] * len(images), "features")
    with pytest.raises(ValueError, match="no row names an object"):
        box_randomization(PixelsThenHead(), rows, [], "hirescam", BoxSettings())
