"""RISE: a hand computation with fixed masks, a linear model's map converging to its weights,
the masks the paper describes, and results that depend on the seed but not on the chunks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from oracle import assert_matches
from tiny_models import TinyVQA

from mmcam.core.targets import ClassLogit, ClassLogits
from mmcam.methods.rise import RiseMasks, rise

CPU = torch.device("cpu")


def two_scores(x: torch.Tensor) -> torch.Tensor:
    """[x00 * x11, sum of the pixels] of a one-channel 2x2 image: a product and a sum."""
    return torch.stack([x[:, 0, 0, 0] * x[:, 0, 1, 1], x.sum(dim=(1, 2, 3))], dim=1)


def test_fixed_masks_give_the_hand_computed_saliency():
    """I = [[1, 2], [3, 4]], M1 = [[1, 0], [0, 1]], M2 = [[1, 1], [0, 0]], p = 0.5, N p = 1.
    Product: f(I M1) = 4, f(I M2) = 0, so S = 4 M1 = [[4, 0], [0, 4]].
    Sum: f(I M1) = 5, f(I M2) = 3, so S = 5 M1 + 3 M2 = [[8, 3], [0, 5]].
    Maps: S minus the mean score times the coverage M1 + M2 = [[2, 1], [0, 1]], normalised;
    the product: [[4, 0], [0, 4]] - 2 [[2, 1], [0, 1]] = [[0, -2], [0, 2]] -> [[.5, 0], [.5, 1]]."""
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    masks = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    for batch_size in (1, 2, None):
        ours = rise(two_scores, image, lambda s: s, p=0.5, masks=masks, batch_size=batch_size)
        assert ours.raw.shape == (1, 2, 2, 2)
        assert ours.raw[0, 0].tolist() == [[4.0, 0.0], [0.0, 4.0]]
        assert ours.raw[0, 1].tolist() == [[8.0, 3.0], [0.0, 5.0]]
        assert ours.maps[0, 0].tolist() == [[0.5, 0.0], [0.5, 1.0]]
        assert ours.scores.tolist() == [[4.0, 10.0]]


def test_a_fill_value_shows_through_the_hidden_pixels():
    """copy = fill + (I - fill) M: with fill 1 and M1 = [[1, 0], [0, 0]], the product is 1 * 1."""
    image = torch.tensor([[3.0, 2.0], [5.0, 7.0]]).view(1, 1, 2, 2)
    masks = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    ours = rise(two_scores, image, lambda s: s, p=1.0, masks=masks, fill=1.0)
    assert ours.raw[0, 0].tolist() == [[3.0, 0.0], [0.0, 0.0]]  # 3 * 1, on M1's pixel
    assert ours.raw[0, 1].tolist() == [[6.0, 0.0], [0.0, 0.0]]  # 3 + 1 + 1 + 1


def linear_error(weights: torch.Tensor, n_masks: int) -> float:
    """Largest gap between the normalised RISE map of w . x (at x = 1, one-pixel cells) and
    the normalised weights; in expectation S = (1 - p) w + p sum(w), so the gap goes to 0."""
    images = torch.ones(1, 1, *weights.shape)
    model = lambda x: (x[:, 0] * weights).sum(dim=(1, 2))[:, None]  # noqa: E731
    ours = rise(model, images, ClassLogit(0), n_masks=n_masks, cell=1, p=0.5, seed=1)
    expected = (weights - weights.min()) / (weights.max() - weights.min())
    return float((ours.maps[0] - expected).abs().max())


def test_a_linear_models_map_converges_to_its_weight_pattern():
    torch.manual_seed(0)
    weights = torch.randn(6, 6)
    errors = [linear_error(weights, n) for n in (50, 500, 5000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1
    corner = torch.zeros(8, 8)
    corner[:3, :3] = 1.0  # only one corner matters: the map's peak is there
    images = torch.ones(1, 1, 8, 8)
    model = lambda x: (x[:, 0] * corner).sum(dim=(1, 2))[:, None]  # noqa: E731
    coarse = rise(model, images, ClassLogit(0), n_masks=500, cell=2, seed=0)
    peak = int(coarse.raw[0].argmax())
    assert peak // 8 < 3 and peak % 8 < 3


def test_masks_are_upsampled_shifted_cells_kept_with_probability_p():
    masks = RiseMasks(400, (12, 20), cell=4, p=0.3, seed=5)
    all_of_them = masks.chunk(0, 400, CPU)
    assert all_of_them.shape == (400, 12, 20)
    assert all_of_them.min() >= 0 and all_of_them.max() <= 1
    assert float(all_of_them.mean()) == pytest.approx(0.3, abs=0.03)
    assert masks.grids.shape == (400, 4, 6)  # ceil(12 / 4) + 1, ceil(20 / 4) + 1 cells
    assert 0 <= int(masks.shifts.min()) and int(masks.shifts.max()) == 3
    # a chunk is the same masks whatever the chunking, and the seed decides them
    assert torch.equal(torch.cat([masks.chunk(0, 7, CPU), masks.chunk(7, 400, CPU)]), all_of_them)
    assert not torch.equal(RiseMasks(400, (12, 20), 4, 0.3, seed=6).chunk(0, 400, CPU), all_of_them)
    # one-pixel cells, no shift: binary masks
    assert set(RiseMasks(10, (5, 5), cell=1).chunk(0, 10, CPU).unique().tolist()) <= {0.0, 1.0}
    # by default a 7 x 7 grid over the shorter side, as in the paper
    assert RiseMasks(1, (224, 300)).cell == (32, 32)


def test_a_mask_is_its_grid_upsampled_bilinearly_and_cropped_at_its_shift():
    masks = RiseMasks(6, (10, 13), cell=(3, 4), p=0.5, seed=2)
    made = masks.chunk(0, 6, CPU)
    for index in range(6):
        grid = masks.grids[index][None, None]  # [1, 1, 5, 5]
        big = (grid.shape[-2] * 3, grid.shape[-1] * 4)
        upsampled = F.interpolate(grid, size=big, mode="bilinear", align_corners=False)[0, 0]
        down, across = masks.shifts[index].tolist()
        expected = upsampled[down : down + 10, across : across + 13]
        torch.testing.assert_close(made[index], expected, atol=1e-6, rtol=0)


def test_every_answer_from_one_sweep_equals_one_answer_at_a_time():
    torch.manual_seed(0)
    model = TinyVQA().eval()
    images = torch.randn(2, 3, 8, 8)
    questions = model.tokenize(["what colour is it", "is it left"])
    answers = torch.tensor([[2, 0, 5], [1, 3, 4]])
    options = dict(n_masks=60, cell=3, p=0.4, seed=3, forward_args=(questions,))
    together = rise(model, images, ClassLogits(answers), batch_size=7, **options)
    assert together.raw.shape == (2, 3, 8, 8) and together.scores.shape == (2, 3)
    for rank in range(3):
        alone = rise(model, images, ClassLogit(answers[:, rank]), batch_size=None, **options)
        assert_matches(together.raw[:, rank], alone.raw)
        assert_matches(together.maps[:, rank], alone.maps)
        assert_matches(together.scores[:, rank], alone.scores)


def test_the_same_seed_repeats_and_another_seed_differs(tiny_classifier):
    model, images = tiny_classifier
    first = rise(model, images, ClassLogit([1, 3, 0]), n_masks=40, cell=4, seed=7, batch_size=3)
    again = rise(model, images, ClassLogit([1, 3, 0]), n_masks=40, cell=4, seed=7, batch_size=40)
    other = rise(model, images, ClassLogit([1, 3, 0]), n_masks=40, cell=4, seed=8)
    assert_matches(first.raw, again.raw)
    assert not torch.allclose(first.raw, other.raw)


def test_a_constant_score_gives_flat_maps_flagged_empty():
    images = torch.rand(2, 3, 8, 8)
    ours = rise(lambda x: torch.ones(x.shape[0], 1), images, ClassLogit(0), n_masks=30, cell=2)
    assert ours.empty.all() and (ours.maps == 0).all()


def test_bad_settings_raise(tiny_classifier):
    model, images = tiny_classifier
    target = ClassLogit([1, 3, 0])
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        rise(model, images, target, p=0.0)
    with pytest.raises(ValueError, match="larger than the image"):
        rise(model, images, target, cell=17)
    with pytest.raises(ValueError, match="n_masks must be >= 1"):
        rise(model, images, target, n_masks=0)
    with pytest.raises(ValueError, match=r"masks must be \[N, 16, 16\]"):
        rise(model, images, target, masks=torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        rise(model, images, target, n_masks=4, batch_size=0)


def test_parameters_get_no_gradient_and_mode_is_kept(tiny_classifier):
    model, images = tiny_classifier
    model.train()
    rise(model, images, ClassLogit([1, 3, 0]), n_masks=8, cell=4)
    assert model.training and all(p.grad is None for p in model.parameters())
