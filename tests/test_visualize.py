"""Overlays and figures: colours where the map is hot, panels where they should be."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from mmcam.visualize import PanelRow, map_grid, overlay


def test_overlay_colours_hot_and_cold_pixels_by_the_colour_map():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    heat = torch.zeros(4, 6)
    heat[1, 2] = 1.0
    blended = overlay(image, heat, alpha=0.5)
    hot = np.round(0.5 * np.array(colormaps["jet"](1.0)[:3]) * 255)
    cold = np.round(0.5 * np.array(colormaps["jet"](0.0)[:3]) * 255)
    assert blended.shape == (4, 6, 3) and blended.dtype == np.uint8
    assert blended[1, 2].tolist() == hot.tolist()
    assert blended[3, 5].tolist() == cold.tolist()


def test_overlay_upsamples_a_layer_resolution_map_to_the_image():
    image = torch.ones(3, 32, 32)
    heat = torch.zeros(4, 4)
    heat[0, 0] = 1.0  # the top-left cell
    blended = overlay(image, heat, alpha=1.0).astype(int)
    red = blended[..., 0] - blended[..., 2]
    row, column = np.unravel_index(red.argmax(), red.shape)
    assert row < 8 and column < 8


def test_map_grid_lays_out_one_row_per_entry(tmp_path):
    rows = [
        PanelRow(
            "Grad-CAM",
            torch.rand(3, 16, 16),
            ["a", "red", "circle"],
            boxes=[[], [], [[2, 2, 5, 5]]],
        ),
        PanelRow("occlusion", torch.rand(2, 16, 16), ["a", "red"]),
    ]
    path = map_grid(torch.rand(3, 16, 16), rows, tmp_path / "f.png", suptitle="a red circle")
    width, height = Image.open(path).size
    assert (width, height) == (round(2.1 * 4 * 100), round(2.3 * 2 * 100))


def test_row_with_mismatched_titles_is_refused():
    with pytest.raises(ValueError, match="row 'x': 2 maps but 1 titles"):
        PanelRow("x", torch.rand(2, 4, 4), ["only one"])
