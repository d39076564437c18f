"""Refined boxes (map + image): the map seeds GrabCut, the image draws the object's extent, and
a box the map does not support is flagged and scored below one it does."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mmcam.boxes.evidence import LOW_EXCESS, box_evidence
from mmcam.boxes.from_maps import Box
from mmcam.boxes.refine import (
    MIN_IMAGE_SIDE,
    RefineSettings,
    is_flat,
    refined_box,
    refined_boxes,
)
from mmcam.boxes.settings import BoxSettings, box_settings, map_boxes


def noise_with_shape(kind: str) -> tuple[np.ndarray, list[int]]:
    """A 96x96 noise image with one red shape drawn on it, and the shape's COCO box."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    if kind == "rectangle":
        draw.rectangle([30, 20, 69, 49], fill=(230, 20, 20))  # columns 30..69, rows 20..49
    else:
        draw.ellipse([30, 20, 69, 49], fill=(230, 20, 20))
    pixels = np.asarray(image)
    rows, cols = np.nonzero((pixels == (230, 20, 20)).all(axis=2))
    box = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
    return pixels, [int(v) for v in box]


def corner_map(row: float, col: float, size: int = 96, sigma: float = 3.0) -> torch.Tensor:
    """A map peaked at one point: what a CAM looks like when the model read one corner."""
    grid_r, grid_c = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.exp(-((grid_r - row) ** 2 + (grid_c - col) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("kind", ["rectangle", "ellipse"])
def test_map_peaked_on_one_corner_gives_the_shapes_box(kind):
    image, truth = noise_with_shape(kind)
    heat = corner_map(24.0, 36.0)  # near the top-left of the shape, inside it
    box = refined_box(image, heat)
    assert box is not None and box.refined
    np.testing.assert_allclose(box.to_list(), truth, atol=1)
    # The map's own box covers only the corner the map marks.
    own = map_boxes(heat, image, BoxSettings(threshold=0.15)).threshold
    assert not own.refined and own.area < 0.25 * truth[2] * truth[3]


def test_a_low_resolution_map_is_resized_to_the_image():
    image, truth = noise_with_shape("rectangle")
    # A 12x12 grid (8 px cells, as a CAM at stride 8) peaked on a cell inside the shape.
    small = torch.nn.functional.avg_pool2d(corner_map(28.0, 44.0)[None, None], 8)[0, 0]
    box = refined_box(image, small)
    np.testing.assert_allclose(box.to_list(), truth, atol=1)


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_flat_map_gives_no_box_and_is_flagged(value):
    image, _ = noise_with_shape("rectangle")
    flat = torch.full((96, 96), value)
    assert is_flat(flat)
    assert refined_box(image, flat) is None
    assert refined_boxes(image, flat[None]) == [[]]
    found = map_boxes(flat, image, BoxSettings())
    assert found.flat and found.box is None and found.refined is None and found.threshold is None


def test_refined_boxes_of_several_maps_keep_their_order():
    image, truth = noise_with_shape("rectangle")
    maps = torch.stack([torch.zeros(96, 96), corner_map(24.0, 36.0)])
    empty, (box,) = refined_boxes(image, maps)
    assert empty == [] and box.refined
    np.testing.assert_allclose(box.to_list(), truth, atol=1)


def test_bad_image_and_seeds_are_refused():
    with pytest.raises(ValueError, match="8-bit RGB"):
        refined_box(np.zeros((8, 8, 3), dtype=np.float32), torch.ones(8, 8))
    with pytest.raises(ValueError, match="support < seed"):
        RefineSettings(seed=0.2, support=0.3)
    with pytest.raises(ValueError, match="'threshold' or 'refined'"):
        BoxSettings(boxes="both")


def test_box_settings_are_read_from_the_table(tmp_path):
    table = tmp_path / "box_settings.json"
    table.write_text(
        '{"methods": {"hirescam": {"threshold": 0.3, "boxes": "refined", "seed": 0.7,'
        ' "support": 0.05}}}'
    )
    assert box_settings("hirescam", table) == BoxSettings(0.3, "refined", 0.7, 0.05)
    assert box_settings("gradcam", table) == BoxSettings()
    with pytest.raises(FileNotFoundError, match="no box settings table at .*missing.json"):
        box_settings("gradcam", tmp_path / "missing.json")


# ----------------------------------------------------------------------------- flagged guesses


def guesses() -> dict[str, tuple[np.ndarray, torch.Tensor]]:
    """Refined boxes the map does not support: (image, map) pairs."""
    image, _ = noise_with_shape("rectangle")
    plain = np.full((96, 96, 3), 120, dtype=np.uint8)
    return {
        "plain background": (plain, corner_map(24.0, 36.0)),
        "whole image": (image, corner_map(48.0, 48.0, sigma=40.0)),
        "0.1% contrast": (image, 1.0 + 1e-3 * corner_map(24.0, 36.0)),
    }


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("plain background", "no_edge"),
        ("whole image", "covers_image"),
        ("0.1% contrast", "low_mass"),
    ],
)
def test_a_guessed_refined_box_is_flagged_and_scores_below_a_correct_box(name, flag):
    image, truth = noise_with_shape("rectangle")
    right = refined_box(image, corner_map(24.0, 36.0))
    np.testing.assert_allclose(right.to_list(), truth, atol=1)
    assert right.flags == () and right.score > 0.5
    guess = refined_box(*guesses()[name])
    assert flag in guess.flags, guess
    assert guess.score < LOW_EXCESS <= right.score  # COCO AP ranks the right box first


def test_every_flagged_box_scores_below_every_supported_one():
    image, _ = noise_with_shape("rectangle")
    heat = corner_map(24.0, 36.0)
    boxes = [Box(x, y, w, h) for x in (0, 20, 30) for y in (0, 20) for w in (10, 40, 96)
             for h in (10, 30, 96)]  # fmt: skip
    evidence = [box_evidence(heat, box) for box in boxes]
    flagged = [e.score for e in evidence if e.flags]
    supported = [e.score for e in evidence if not e.flags]
    assert flagged and supported and max(flagged) < LOW_EXCESS <= min(supported)


def test_a_box_beside_the_maps_peak_is_flagged():
    heat = corner_map(24.0, 36.0)
    beside = box_evidence(heat, Box(40.0, 10.0, 30.0, 30.0))  # holds the map's tail, not its peak
    assert not beside.peak_inside and "peak_outside" in beside.flags
    on = box_evidence(heat, Box(30.0, 18.0, 12.0, 12.0))
    assert on.peak_inside and on.flags == () and on.mass > 0.9


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (2, 40)])
def test_an_image_too_small_to_segment_is_refused_with_the_minimum_size(size):
    image = np.full((*size, 3), 100, dtype=np.uint8)
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} pixels"):
        refined_box(image, corner_map(5.0, 5.0, size=16))


def test_a_map_whose_peak_falls_between_the_images_pixels_gives_no_box():
    heat = torch.zeros(16, 16)
    heat[10, 5] = 1.0  # bilinear resizing to 3 rows reads rows 2-3, 7-8 and 12-13 only
    assert refined_box(np.full((3, 40, 3), 100, dtype=np.uint8), heat) is None
