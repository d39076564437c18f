"""The sanity checks' similarity measures: Spearman against scipy, SSIM and HOG against their
definitions, flat maps flagged rather than scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from mmcam.evaluation.map_similarity import map_similarity


def test_spearman_equals_scipy_signed_and_absolute_with_ties() -> None:
    torch.manual_seed(0)
    a = torch.randn(3, 16, 16).round()  # rounding makes many ties
    b = a + torch.randn(3, 16, 16)
    result = map_similarity(a, b)
    for row in range(3):
        x, y = a[row].flatten().numpy(), b[row].flatten().numpy()
        assert result.spearman[row] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
        assert result.spearman_abs[row] == pytest.approx(
            spearmanr(np.abs(x), np.abs(y))[0], abs=1e-12
        )


def test_ssim_and_hog_are_those_of_the_max_scaled_absolute_maps() -> None:
    torch.manual_seed(1)
    a, b = torch.randn(1, 32, 32), torch.rand(1, 32, 32)
    result = map_similarity(a, b)
    x = (a.abs() / a.abs().max())[0].double().numpy()
    y = (b / b.max())[0].double().numpy()
    assert result.ssim[0] == pytest.approx(structural_similarity(x, y, data_range=1.0))
    hog_x, hog_y = (hog(m, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for m in (x, y))
    assert result.hog[0] == pytest.approx(pearsonr(hog_x, hog_y)[0])
    assert result.ssim[0] < 0.5 and result.hog[0] < 0.9


def test_a_map_against_a_positive_multiple_of_itself_scores_one() -> None:
    a = torch.rand(2, 24, 24)
    result = map_similarity(a, 3.0 * a)
    for name in ("spearman", "spearman_abs", "ssim", "hog"):
        assert getattr(result, name) == pytest.approx([1.0, 1.0])


def test_flat_maps_are_flagged_not_scored() -> None:
    a = torch.rand(3, 16, 16)
    b = torch.rand(3, 16, 16)
    b[1] = 0.0  # the randomised model gave no gradient for row 1
    result = map_similarity(a, b)
    assert result.flat.tolist() == [False, True, False]
    assert np.isnan(result.spearman[1]) and np.isnan(result.ssim[1])
    means = result.means()
    assert means["flat"] == pytest.approx(1 / 3)
    assert means["spearman"] == pytest.approx(np.mean(result.spearman[[0, 2]]))
    assert map_similarity(a[1:2], b[1:2]).means()["spearman"] is None


def test_maps_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"both be \[R, H, W\]"):
        map_similarity(torch.rand(2, 8, 8), torch.rand(2, 8, 9))
