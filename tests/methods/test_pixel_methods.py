"""Guided backprop, deconvnet, guided Grad-CAM and the strongest feature map: equal to Captum,
the same on functional-relu and ReLU6 networks, and leaving the model exactly as it was."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam
from oracle import assert_matches
from tiny_models import TinyCaptioner, TinyCNN, TinyVQA
from torch import nn

from mmcam.core.targets import CaptionLogProb, ClassLogit, WordLogProb
from mmcam.methods.perturbation import occlusion
from mmcam.methods.pixel_space import (
    deconvnet,
    guided_backprop,
    guided_grad_cam,
    pixel_explanations,
    strongest_feature_map,
)
from mmcam.visualize import panel_row

CLASSES = [1, 3, 0]


def plain_gradient(model: nn.Module, images: torch.Tensor, classes) -> torch.Tensor:
    inputs = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ClassLogit(classes)(model(inputs)).sum(), inputs)
    return grad


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns about its hooks on every call
        return call(*args, **kwargs)


def test_guided_backprop_equals_captum_with_a_class_per_image(tiny_classifier):
    model, images = tiny_classifier
    ours = guided_backprop(model, images, ClassLogit(CLASSES))
    assert_matches(ours.raw, quiet(GuidedBackprop(model).attribute, images, target=CLASSES))
    assert ours.raw.shape == (3, 3, 16, 16) and ours.maps.shape == (3, 16, 16)
    assert_matches(ours.scores, model(images)[torch.arange(3), CLASSES])
    assert not torch.allclose(ours.raw, plain_gradient(model, images, CLASSES))


def test_deconvnet_equals_captum(tiny_classifier):
    model, images = tiny_classifier
    ours = deconvnet(model, images, ClassLogit(CLASSES))
    assert_matches(ours.raw, quiet(Deconvolution(model).attribute, images, target=CLASSES))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_guided_grad_cam_equals_captum(tiny_classifier, mode):
    model, images = tiny_classifier
    ours = guided_grad_cam(model, images, ClassLogit(CLASSES), model, "features", mode=mode)
    captum = GuidedGradCam(model, model.features)
    assert_matches(ours.raw, quiet(captum.attribute, images, target=CLASSES, interpolate_mode=mode))


def test_guided_backprop_equals_captum_on_resnet18_with_in_place_relus():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    images = torch.randn(2, 3, 64, 64)
    ours = guided_backprop(model, images, ClassLogit([7, 2]))
    assert_matches(ours.raw, quiet(GuidedBackprop(model).attribute, images, target=[7, 2]))


class FunctionalCNN(TinyCNN):
    """TinyCNN's twin that calls relu functionally, in three spellings."""

    def forward(self, images):
        conv1, conv2 = self.body[0], self.features[0]
        hidden = F.max_pool2d(torch.relu(conv1(images)), 2)
        hidden = conv2(hidden) * 1.0
        hidden.relu_()
        hidden = F.relu(hidden)  # idempotent: a second functional call on the same values
        return self.fc(self.pool(hidden).flatten(1))


def test_functional_relu_gives_the_same_guided_map_as_its_module_twin(tiny_classifier):
    model, images = tiny_classifier
    twin = FunctionalCNN().eval()
    twin.load_state_dict(model.state_dict())
    for method in (guided_backprop, deconvnet):
        assert_matches(method(twin, images, ClassLogit(CLASSES)).raw,
              method(model, images, ClassLogit(CLASSES)).raw)  # fmt: skip


def twin_with(activation: nn.Module, model: TinyCNN) -> TinyCNN:
    twin = TinyCNN().eval()
    twin.load_state_dict(model.state_dict())
    twin.body[1] = activation
    twin.features[1] = activation
    return twin


@pytest.mark.parametrize("activation", [nn.ReLU6(), nn.Hardtanh(0.0, 6.0), nn.ReLU(inplace=True)])
def test_relu6_network_gets_the_guided_rule(tiny_classifier, activation):
    """Inputs small enough that no activation reaches 6: ReLU6 = ReLU, so the maps must match
    the ReLU network's (Captum returns the plain gradient on the ReLU6 network)."""
    model, images = tiny_classifier
    small = images * 0.1
    twin = twin_with(activation, model)
    with torch.no_grad():
        assert twin.features(twin.body(small)).max() < 6
    assert_matches(guided_backprop(twin, small, ClassLogit(CLASSES)).raw,
          guided_backprop(model, small, ClassLogit(CLASSES)).raw)  # fmt: skip
    if isinstance(activation, nn.ReLU6):
        captum = quiet(GuidedBackprop(twin).attribute, small, target=CLASSES)
        assert_matches(captum, plain_gradient(twin, small, CLASSES))  # the Captum limitation


def test_relu6_guided_rule_stops_gradients_above_six():
    """y = w . relu6(x): the guided gradient is max(w, 0) where 0 < x < 6, else 0."""
    weights = torch.tensor([[1.0, -2.0, 3.0, 4.0]])
    model = nn.Sequential(nn.ReLU6(), nn.Linear(4, 1, bias=False))
    model[1].weight.data = weights
    images = torch.tensor([[[[2.0, 2.0, -1.0, 7.0]]]]).view(1, 4)
    gradient = guided_backprop(lambda x: model(x.view(1, 4)), images.view(1, 1, 1, 4),
                               lambda out: out[:, 0]).raw  # fmt: skip
    assert gradient.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


def test_leaky_relu_keeps_its_slope_and_drops_negative_gradients():
    """y = w . leaky(x, 0.1): guided dR/dx = leaky'(x) * max(w, 0); deconvnet max(w, 0)."""
    linear = nn.Linear(4, 1, bias=False)
    linear.weight.data = torch.tensor([[1.0, -2.0, 3.0, 4.0]])
    forward = lambda x: linear(F.leaky_relu(x.view(1, 4), 0.1))  # noqa: E731
    images = torch.tensor([2.0, 2.0, -1.0, -7.0]).view(1, 1, 1, 4)
    guided = guided_backprop(forward, images, lambda out: out[:, 0]).raw
    assert guided.flatten().tolist() == pytest.approx([1.0, 0.0, 0.3, 0.4])
    deconv = deconvnet(forward, images, lambda out: out[:, 0]).raw
    assert deconv.flatten().tolist() == [1.0, 0.0, 3.0, 4.0]


def test_a_model_without_relu_family_activations_warns_and_gives_plain_gradient(
    tiny_classifier,
):
    model, images = tiny_classifier
    smooth = twin_with(nn.GELU(), model)
    with pytest.warns(UserWarning, match=r"\(activations seen: gelu\).*plain input gradient"):
        ours = guided_backprop(smooth, images, ClassLogit(CLASSES))
    assert_matches(ours.raw, plain_gradient(smooth, images, CLASSES))


def test_batched_maps_equal_one_image_at_a_time(tiny_classifier):
    model, images = tiny_classifier
    batched = guided_backprop(model, images, ClassLogit(CLASSES)).raw
    for row, label in enumerate(CLASSES):
        assert_matches(batched[row : row + 1], guided_backprop(model, images[row : row + 1],
                                                      ClassLogit(label)).raw)  # fmt: skip


def no_hooks(model: nn.Module) -> bool:
    return all(
        not (
            m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        )  # fmt: skip
        for m in model.modules()
    )


def test_model_is_exactly_as_before_afterwards(tiny_classifier):
    model, images = tiny_classifier
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    guided_backprop(model, images, ClassLogit(CLASSES), model=model)
    guided_grad_cam(model, images, ClassLogit(CLASSES), model, "features")
    strongest_feature_map(model, images, model, "features")
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert no_hooks(model)
    assert torch._C._len_torch_function_stack() == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_rule_and_mode_are_removed_when_the_forward_raises(tiny_classifier):
    model, images = tiny_classifier
    model.train()

    def failing(x):
        model(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        guided_backprop(failing, images, ClassLogit(CLASSES), model=model)
    with pytest.raises(RuntimeError, match="boom"):
        strongest_feature_map(failing, images, model, "features", ClassLogit(CLASSES))
    assert torch._C._len_torch_function_stack() == 0 and model.training and no_hooks(model)
    with torch.no_grad():  # relu is ordinary again
        x = torch.randn(5, requires_grad=True)
    y = torch.relu(x * 1)
    (grad,) = torch.autograd.grad((y * -1).sum(), x)
    assert torch.equal(grad, -(x > 0).float())


def test_caption_word_and_vqa_targets_batched_equal_per_image():
    torch.manual_seed(0)
    captioner = TinyCaptioner().eval()
    images = torch.randn(2, 3, 8, 8)  # the tiny captioner's grid is 4 x 4
    tokens = torch.tensor([[1, 5, 6, 7, 2], [1, 4, 3, 2, 0]])
    lengths = torch.tensor([4, 3])

    def caption_forward(x, t=tokens, n=lengths):
        return captioner.decode_logits(captioner.encode(x), t, n)

    for target, one in [
        (CaptionLogProb(tokens, lengths), lambda r: CaptionLogProb(tokens[r], lengths[r])),
        (WordLogProb(tokens, lengths, [2, 0]),
         lambda r: WordLogProb(tokens[r], lengths[r], [[2, 0][r]])),
    ]:  # fmt: skip
        batched = guided_backprop(caption_forward, images, target)
        for r in range(2):
            single = guided_backprop(lambda x, r=r: caption_forward(x, tokens[r : r + 1],
                                                                    lengths[r : r + 1]),
                                     images[r : r + 1], one(slice(r, r + 1)))  # fmt: skip
            assert_matches(batched.raw[r : r + 1], single.raw)
            assert_matches(batched.scores[r : r + 1], single.scores)
        assert batched.scores.shape == (2,) and (batched.scores < 0).all()

    vqa = TinyVQA().eval()
    questions = vqa.tokenize(["what colour is it", "is it left"])
    answers = ClassLogit([2, 0])
    batched = guided_backprop(vqa, images, answers, forward_args=(questions,))
    assert_matches(batched.scores, vqa(images, questions)[torch.arange(2), [2, 0]].detach())
    single = guided_backprop(vqa, images[1:], ClassLogit(0), forward_args=(questions[1:],))
    assert_matches(batched.raw[1:], single.raw)


def test_strongest_feature_map_is_the_deconvnet_projection_of_the_top_channel(tiny_classifier):
    model, images = tiny_classifier
    ran_head = []
    handle = model.fc.register_forward_hook(lambda *_: ran_head.append(True))
    try:
        ours = strongest_feature_map(model, images, model, "features")
    finally:
        handle.remove()
    assert not ran_head  # without a target the pass stops at the layer
    with torch.no_grad():
        grid = model.features(model.body(images))  # [B, K, h, w]
    channels = grid.sum(dim=(2, 3)).argmax(1)
    assert ours.labels == [f"features channel {int(k)}" for k in channels]
    assert_matches(ours.scores, grid.sum(dim=(2, 3))[torch.arange(3), channels])
    seed = grid * F.one_hot(channels, grid.shape[1])[:, :, None, None]

    class Projection(nn.Module):  # <A_k*, A> as a network for Captum's Deconvolution
        def __init__(self) -> None:
            super().__init__()
            self.body, self.features = model.body, model.features

        def forward(self, x):
            return (self.features(self.body(x)) * seed).sum(dim=(1, 2, 3))

    assert_matches(ours.raw, quiet(Deconvolution(Projection()).attribute, images))
    with_target = strongest_feature_map(model, images, model, "features", ClassLogit(CLASSES))
    assert_matches(with_target.raw, ours.raw)
    assert_matches(with_target.scores, model(images)[torch.arange(3), CLASSES].detach())


def test_short_target_list_raises(tiny_classifier):
    model, images = tiny_classifier
    with pytest.raises(ValueError, match="2 target classes for a batch of 3"):
        guided_backprop(model, images, ClassLogit([1, 2]))


def test_one_row_per_method_for_a_caption_and_a_vqa_example(tmp_path):
    torch.manual_seed(0)
    captioner, vqa = TinyCaptioner().eval(), TinyVQA().eval()
    images = torch.randn(2, 3, 8, 8)
    tokens, lengths = torch.tensor([[1, 5, 6, 7, 2], [1, 4, 3, 2, 0]]), torch.tensor([4, 3])
    questions = vqa.tokenize(["what colour is it", "is it left"])

    def caption_forward(x, t, n):
        return captioner.decode_logits(captioner.encode(x), t, n)

    examples = [
        (caption_forward, WordLogProb(tokens, lengths, [1, 0]), captioner, "encoder.features",
         (tokens, lengths)),
        (vqa, ClassLogit([2, 0]), vqa, "image.features", (questions,)),
    ]  # fmt: skip
    for forward, target, model, layer, args in examples:
        rows = pixel_explanations(forward, images, target, model, layer, window=4, stride=2,
                                  forward_args=args)  # fmt: skip
        names = ["guided backprop", "deconvnet", "guided Grad-CAM", "occlusion",
                 "strongest feature map"]  # fmt: skip
        assert list(rows) == names
        for explanation in rows.values():
            assert explanation.maps.shape == (2, 8, 8) and explanation.raw.shape == (2, 3, 8, 8)
        direct = occlusion(forward, images, target, 4, 2, forward_args=args)
        assert_matches(rows["occlusion"].raw, direct.raw)
        assert_matches(rows["guided backprop"].scores, rows["occlusion"].scores)
        panel = panel_row(rows, "pixel methods", index=1)
        assert panel.titles[:4] == names[:4]
        assert panel.titles[4].startswith(f"strongest feature map: {layer} channel ")
        assert torch.equal(panel.maps[3], rows["occlusion"].maps[1])
    assert all(p.grad is None for p in [*captioner.parameters(), *vqa.parameters()])


def test_relu_calls_spelled_with_keywords_get_the_rule():
    """y = w . relu(x) with the input passed by keyword: guided gives max(w, 0) where x > 0."""
    linear = nn.Linear(4, 1, bias=False)
    linear.weight.data = torch.tensor([[1.0, -2.0, 3.0, 4.0]])
    images = torch.tensor([2.0, 2.0, -1.0, 7.0]).view(1, 1, 1, 4)
    for activation in (lambda x: F.relu(input=x),
                       lambda x: F.hardtanh(x, min_val=0.0, max_val=6.0)):  # fmt: skip
        forward = lambda x, f=activation: linear(f(x.view(1, 4)))  # noqa: E731
        guided = guided_backprop(forward, images, lambda out: out[:, 0]).raw.flatten().tolist()
        assert guided[:3] == [1.0, 0.0, 0.0]
    assert guided[3] == 0.0  # 7 is above the clip of 6
