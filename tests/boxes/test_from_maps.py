"""Boxes from maps: hand-checked pixel conventions, resizing and component choice."""

import pytest
import torch

from mmcam.boxes.from_maps import Box, boxes_from_map, boxes_from_maps, resize_map, smooth_maps


def two_blob_map() -> torch.Tensor:
    """16x16 map: blob A (ones, rows 2..5, cols 4..7), blob B (0.8, rows 10..11, cols 10..11)."""
    m = torch.zeros(16, 16)
    m[2:6, 4:8] = 1.0
    m[10:12, 10:12] = 0.8
    return m


def test_box_covering_columns_10_to_19_has_x_10_w_10():
    m = torch.zeros(20, 30)
    m[5:10, 10:20] = 1.0
    assert boxes_from_map(m) == [Box(10.0, 5.0, 10.0, 5.0, score=1.0)]


def test_two_blobs_after_2x_resize_land_in_original_pixels():
    # Bilinear 2x (align_corners=False): a blob's edge pixels get 0.25 and 0.75 of its value.
    # At threshold 0.5 only the 0.75+ rows/cols survive: exactly twice the map's boxes.
    boxes = boxes_from_map(two_blob_map(), 0.5, keep="all", image_size=(32, 32))
    assert [b.to_list() for b in boxes] == [[8, 4, 8, 8], [20, 20, 4, 4]]
    # At 0.15 the 0.25 edges (0.25 * 0.8 = 0.2 for B) survive too: one pixel more each side.
    boxes = boxes_from_map(two_blob_map(), 0.15, keep="all", image_size=(32, 32))
    assert [b.to_list() for b in boxes] == [[7, 3, 10, 10], [19, 19, 6, 6]]


def test_non_square_resize_scales_each_axis():
    # 3x columns: output column o samples source (o + 0.5) / 3 - 0.5; columns 12..23 get
    # >= 2/3 of blob A, columns 11 and 24 only 1/3.
    boxes = boxes_from_map(two_blob_map(), 0.5, image_size=(32, 48))  # 2x rows, 3x cols
    assert [b.to_list() for b in boxes] == [[12, 4, 12, 8]]


def test_keep_largest_picks_the_bigger_blob_and_scores_by_mean():
    (box,) = boxes_from_map(two_blob_map(), 0.5)
    assert box.to_list() == [4, 2, 4, 4]
    assert box.score == pytest.approx(1.0)
    all_boxes = boxes_from_map(two_blob_map(), 0.5, keep="all")
    assert [b.score for b in all_boxes] == pytest.approx([1.0, 0.8])


def test_min_area_drops_small_components():
    # After the 2x resize at 0.5, blob B keeps 12 pixels (4x4 minus 0.45-valued corners).
    boxes = boxes_from_map(two_blob_map(), 0.5, keep="all", min_area=13, image_size=(32, 32))
    assert [b.to_list() for b in boxes] == [[8, 4, 8, 8]]
    assert boxes_from_map(two_blob_map(), 0.5, min_area=17) == []


def test_diagonal_neighbours_are_one_component():
    m = torch.zeros(5, 5)
    m[1, 1] = m[2, 2] = 1.0
    assert [b.to_list() for b in boxes_from_map(m, keep="all")] == [[1, 1, 2, 2]]


def test_threshold_is_relative_to_the_maximum_and_strict():
    m = torch.tensor([[0.0, 0.1, 0.2, 0.4]])
    assert boxes_from_map(m, 0.5)[0].to_list() == [3, 0, 1, 1]  # 0.2 is not > 0.5 * 0.4
    assert boxes_from_map(m, 0.0)[0].to_list() == [1, 0, 3, 1]  # support of the map


def test_empty_map_gives_no_boxes():
    assert boxes_from_map(torch.zeros(8, 8)) == []
    assert boxes_from_maps(torch.zeros(2, 8, 8)) == [[], []]


def test_batch_matches_single_maps_with_per_map_sizes():
    maps = torch.stack([two_blob_map(), two_blob_map().flip(-1)])
    sizes = [(32, 32), (16, 16)]
    batch = boxes_from_maps(maps, 0.5, keep="all", image_sizes=sizes)
    single = [
        boxes_from_map(m, 0.5, keep="all", image_size=s) for m, s in zip(maps, sizes, strict=True)
    ]
    assert batch == single
    assert boxes_from_maps(maps, 0.5, image_sizes=(32, 32))[0][0].to_list() == [8, 4, 8, 8]


def test_resize_map_keeps_same_size_and_batches():
    m = torch.rand(3, 7, 9)
    assert resize_map(m, (7, 9)) is m
    assert resize_map(m, (14, 18)).shape == (3, 14, 18)


def test_box_as_coco_result():
    box = Box(1, 2, 3, 4, score=0.5)
    assert box.as_coco(image_id=7, category_id=3) == {
        "image_id": 7,
        "category_id": 3,
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "score": 0.5,
    }
    assert box.area == 12


def test_clear_errors():
    with pytest.raises(ValueError, match="width and height"):
        Box(0, 0, -1, 5)
    with pytest.raises(ValueError, match="boxes_from_maps"):
        boxes_from_map(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="keep"):
        boxes_from_map(torch.zeros(4, 4), keep="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        boxes_from_map(torch.zeros(4, 4), 15)
    with pytest.raises(ValueError, match="NaN"):
        boxes_from_map(torch.full((4, 4), float("nan")))
    with pytest.raises(ValueError, match="one per map"):
        boxes_from_maps(torch.zeros(3, 4, 4), image_sizes=[(8, 8), (8, 8)])


def test_smoothing_an_impulse_gives_the_gaussian_and_batches():
    impulse = torch.zeros(2, 3, 21, 21)
    impulse[1, 2, 10, 12] = 5.0
    smooth = smooth_maps(impulse, 2.0)
    rows, cols = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    gaussian = torch.exp(-((rows - 10) ** 2 + (cols - 12) ** 2) / (2 * 2.0**2))
    inside = (rows - 10).abs() <= 8  # scipy truncates the kernel at 4 sigma
    inside &= (cols - 12).abs() <= 8
    torch.testing.assert_close(smooth[1, 2], torch.where(inside, gaussian, 0.0), atol=1e-6, rtol=0)
    assert smooth[0].abs().sum() == 0 and smooth[1, :2].abs().sum() == 0  # rows stay apart
    assert smooth_maps(impulse, 0) is impulse
    with pytest.raises(ValueError, match="sigma must be >= 0 pixels, got -1"):
        smooth_maps(impulse, -1)


def test_smoothing_joins_a_speckled_outline_into_one_box():
    heat = torch.zeros(64, 64)
    edge = torch.arange(16, 48, 4)
    heat[16, edge] = heat[47, edge] = heat[edge, 16] = heat[edge, 47] = 1.0
    heat[16, 16] = 1.5  # one speckle brighter than the rest
    (speck,) = boxes_from_map(heat, 0.15)
    assert speck.area == 1
    (outline,) = boxes_from_map(smooth_maps(heat, 2.0), 0.15)
    assert outline.x <= 16 and outline.y <= 16 and outline.x + outline.w >= 48
    assert outline.y + outline.h >= 48 and outline.w <= 40
