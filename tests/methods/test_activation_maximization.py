"""Activation maximisation: a unit, a channel, a class or a caption climbs by a large factor from
a noise start; batched equals one at a time; the L1 penalty shrinks the input; the model is left
as it was; the filter grid is one figure."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from tiny_models import TinyCaptioner, TinyCNN
from torch import nn

from mmcam.core.targets import CaptionLogProb, ClassLogit
from mmcam.methods.activation_maximization import (
    activation_maximization,
    filter_grid,
    gaussian_blur,
    noise_images,
)
from mmcam.methods.layer_output import ChannelMean, UnitActivation, layer_forward


@pytest.fixture
def tiny() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


def test_ascent_raises_each_chosen_unit_by_a_large_factor_from_noise(tiny):
    features = layer_forward(tiny, "features")
    start = noise_images((6, 3, 16, 16), seed=0)
    units = UnitActivation(list(range(6)))  # image k climbs channel k's centre unit
    with torch.no_grad():
        before = units(features(start))
    assert (before == 0).sum() >= 2  # some units are dead at the start
    for settings, factor in [({}, 100), ({"jitter": 1, "blur_sigma": 0.5}, 20)]:
        after = activation_maximization(features, start, units, steps=50, **settings).scores
        assert (after > factor * before.clamp(min=0.01)).all(), (settings, before, after)


def test_redirected_relu_is_what_wakes_a_unit_that_is_dead_at_the_start(tiny):
    features = layer_forward(tiny, "features")
    start = noise_images((6, 3, 16, 16), seed=0)
    units = UnitActivation(list(range(6)))
    with torch.no_grad():
        dead = units(features(start)) == 0
    plain = activation_maximization(features, start, units, steps=30, redirect_steps=0)
    assert (plain.scores[dead] == 0).all() and (plain.scores[~dead] > 1).all()
    redirected = activation_maximization(features, start, units, steps=30)
    assert (redirected.scores > 1).all()


def test_class_channel_and_caption_targets_climb(tiny):
    start = noise_images((3, 3, 16, 16), seed=1)
    with torch.no_grad():
        logits = tiny(start)[torch.arange(3), [0, 2, 4]]
    ours = activation_maximization(tiny, start, ClassLogit([0, 2, 4]), steps=60, step_size=0.2)
    assert (ours.scores > logits + 0.3).all()
    assert ours.raw.shape == (3, 3, 16, 16) and ours.maps.shape == (3, 16, 16)

    channel = activation_maximization(layer_forward(tiny, "body"), start, ChannelMean(2), steps=40)
    with torch.no_grad():
        assert (channel.scores > 10 * tiny.body(start)[:, 2].mean(dim=(1, 2)).clamp(0.01)).all()

    torch.manual_seed(0)
    captioner = TinyCaptioner().eval()
    tokens, lengths = torch.tensor([[1, 5, 6, 7, 2], [1, 4, 3, 2, 0]]), torch.tensor([4, 3])
    caption = CaptionLogProb(tokens, lengths)
    forward = lambda x: captioner.decode_logits(captioner.encode(x), tokens, lengths)  # noqa: E731
    small = noise_images((2, 3, 8, 8), seed=2)
    with torch.no_grad():
        start_logprob = caption(forward(small))
    climbed = activation_maximization(forward, small, caption, steps=40, model=captioner)
    assert (climbed.scores > start_logprob + 0.05).all()  # the tanh image code saturates


def test_batched_ascent_equals_one_image_at_a_time(tiny):
    features = layer_forward(tiny, "features")
    start = noise_images((3, 3, 16, 16), seed=3)
    settings = {"steps": 20, "jitter": 2, "blur_sigma": 0.7, "blur_every": 5, "seed": 4}
    batched = activation_maximization(features, start, UnitActivation([0, 3, 5]), **settings)
    for row, channel in enumerate([0, 3, 5]):
        one = activation_maximization(
            features, start[row : row + 1], UnitActivation(channel), **settings
        )
        torch.testing.assert_close(batched.raw[row : row + 1], one.raw, rtol=1e-4, atol=1e-4)


def test_l1_penalty_shrinks_the_input(tiny):
    features = layer_forward(tiny, "features")
    start = noise_images((2, 3, 16, 16), seed=5)
    units = UnitActivation([0, 3])
    norms = [
        activation_maximization(features, start, units, steps=40, l1=l1).raw.abs().sum()
        for l1 in (0.0, 0.05)
    ]
    assert norms[1] < 0.8 * norms[0]


def test_layer_forward_stops_at_the_layer(tiny):
    ran_head = []
    handle = tiny.fc.register_forward_hook(lambda *_: ran_head.append(True))
    try:
        output = layer_forward(tiny, "features")(torch.randn(1, 3, 16, 16))
    finally:
        handle.remove()
    assert output.shape == (1, 6, 8, 8) and not ran_head
    assert not tiny.features._forward_hooks


def test_filter_grid_is_one_figure_and_leaves_the_model_as_it_was(tiny, tmp_path):
    tiny.train()
    before = {key: value.clone() for key, value in tiny.state_dict().items()}
    path, explanation = filter_grid(tiny, "features", tmp_path / "filters.png", count=6,
                                    size=(16, 16), columns=3, steps=10)  # fmt: skip
    with Image.open(path) as figure:
        assert figure.size[0] > figure.size[1] > 100  # 3 columns, 2 rows
    assert explanation.labels == [f"channel {k}" for k in range(6)]
    assert explanation.raw.shape == (6, 3, 16, 16) and (explanation.scores > 0).all()
    assert tiny.training and all(p.grad is None for p in tiny.parameters())
    assert all(not module._forward_hooks for module in tiny.modules())
    assert torch._C._len_torch_function_stack() == 0
    assert all(torch.equal(value, before[key]) for key, value in tiny.state_dict().items())


def test_gaussian_blur_keeps_constants_and_spreads_a_point_symmetrically():
    constant = torch.full((1, 3, 9, 9), 0.7)
    torch.testing.assert_close(gaussian_blur(constant, 1.0), constant)
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    blurred = gaussian_blur(point, 1.0)[0, 0]
    assert blurred.argmax() == 4 * 9 + 4 and blurred.sum() == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(blurred, blurred.flip(0))
    torch.testing.assert_close(blurred, blurred.T)


def test_a_short_target_raises(tiny):
    with pytest.raises(ValueError, match="2 target classes for a batch of 3"):
        activation_maximization(tiny, (3, 3, 16, 16), ClassLogit([1, 2]), steps=1)


def test_noise_start_is_seeded():
    assert torch.equal(noise_images((1, 3, 4, 4), seed=7), noise_images((1, 3, 4, 4), seed=7))
    assert isinstance(nn.Identity()(noise_images((1, 3, 4, 4))), torch.Tensor)
