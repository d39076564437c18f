"""The engine against oracles: Captum, pytorch-grad-cam, CAM, and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import LayerGradCam
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from tiny_models import TinyCNN
from torch import nn

from mmcam.core.explanation import normalize_maps
from mmcam.core.tap import Tap, Taps
from mmcam.core.targets import ClassLogit
from mmcam.methods.cam import class_activation_map, explain, fused_maps, grad_cam


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return TinyCNN().eval()


def cases(resnet, tiny):
    torch.manual_seed(2)
    return [
        (resnet, resnet.layer4, torch.randn(2, 3, 64, 64), [3, 7]),
        (tiny, tiny.features, torch.randn(3, 3, 16, 16), [0, 4, 2]),
    ]


def test_gradcam_equals_captum_layergradcam(resnet, tiny):
    for model, layer, images, classes in cases(resnet, tiny):
        ours = explain(model, images, ClassLogit(classes), layer)
        theirs = LayerGradCam(model, layer).attribute(
            images, target=classes, relu_attributions=True
        )
        torch.testing.assert_close(ours.raw, theirs.squeeze(1).detach(), atol=1e-5, rtol=0)
        assert ours.raw.abs().max() > 0  # the comparison is not between two empty maps


@pytest.mark.parametrize(
    ("method", "anchor"),
    [
        ("gradcam", GradCAM),
        ("gradcam++", GradCAMPlusPlus),
        ("hirescam", HiResCAM),
        ("layercam", LayerCAM),
    ],
)
def test_normalised_maps_equal_pytorch_grad_cam(resnet, tiny, method, anchor):
    for model, layer, images, classes in cases(resnet, tiny):
        ours = explain(model, images, ClassLogit(classes), layer, method=method)
        with anchor(model=model, target_layers=[layer]) as cam:
            theirs = cam(images, targets=[ClassifierOutputTarget(c) for c in classes])
        assert not ours.empty.all()
        np.testing.assert_allclose(ours.maps.numpy(), theirs, atol=1e-5, rtol=0)


def test_cam_and_gradcam_agree_on_a_gap_network_up_to_a_positive_factor(tiny):
    torch.manual_seed(3)
    images = torch.randn(3, 3, 16, 16)
    target = ClassLogit([1, 2, 3])
    with Tap(tiny, "features") as tap:
        logits = tiny(images)
    cam = class_activation_map(tap, tiny.fc, target, logits, size=images.shape[-2:])
    gradcam = explain(tiny, images, target, "features")
    cells = cam.raw.shape[-1] * cam.raw.shape[-2]
    torch.testing.assert_close(gradcam.raw * cells, cam.raw, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gradcam.maps, cam.maps, atol=1e-5, rtol=0)


class HandNet(nn.Module):
    """A1 = x, A2 = 2x (a 1x1 conv), then y = 0.5 * sum(A1^2) + sum(A2)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))

    def forward(self, x):
        a = self.features(x)
        return (0.5 * a[:, 0].pow(2).sum((1, 2)) + a[:, 1].sum((1, 2)))[:, None]


def test_hand_computed_maps():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    model = HandNet()
    target = ClassLogit(0)
    # G1 = A1 = x, G2 = 1: w1 = mean(x) = 2.5, w2 = 1, map = 2.5 x + 1 * 2x = 4.5 x.
    gradcam = explain(model, x, target, "features")
    assert gradcam.raw[0].tolist() == [[4.5, 9.0], [13.5, 18.0]]
    assert gradcam.scores.tolist() == [0.5 * 30 + 20]
    # Grad-CAM++: alpha1 = x^2 / (2x^2 + 10 x^3) = 1 / (2 + 10x), w1 = sum x / (2 + 10x);
    # alpha2 = 1 / (2 + 20), w2 = 4 / 22.
    w1 = 1 / 12 + 2 / 22 + 3 / 32 + 4 / 42
    w2 = 4 / 22
    plus = explain(model, x, target, "features", method="gradcam++")
    expected = (w1 + 2 * w2) * x[0, 0]
    torch.testing.assert_close(plus.raw[0], expected, atol=1e-6, rtol=1e-6)
    # The counterfactual map of -4.5 x is all negative: ReLU leaves zeros, flagged empty.
    against = explain(model, x, target, "features", method="counterfactual")
    assert against.raw.abs().sum() == 0 and against.empty.tolist() == [True]
    assert not torch.isnan(against.maps).any() and against.maps.abs().sum() == 0


def test_flat_maps_normalise_to_zeros_and_are_flagged():
    maps = torch.stack([torch.zeros(3, 3), torch.full((3, 3), 2.0), torch.arange(9.0).view(3, 3)])
    scaled, empty = normalize_maps(maps)
    assert empty.tolist() == [True, True, False]
    assert scaled[:2].abs().sum() == 0
    assert scaled[2].min() == 0 and scaled[2].max() == 1 and scaled[2, 0, 1] == 0.125


def all_hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_call_leaves_no_hooks_no_grads_same_flags_and_mode():
    resnet = torchvision.models.resnet18(num_classes=10)  # fresh: the anchors fill .grad
    resnet.layer1.requires_grad_(False)  # a mix of frozen and trainable parameters
    flags = [p.requires_grad for p in resnet.parameters()]
    explain(resnet, torch.randn(2, 3, 32, 32), ClassLogit([1, 2]), "layer4")
    assert all_hooks(resnet) == 0
    assert all(p.grad is None for p in resnet.parameters())
    assert [p.requires_grad for p in resnet.parameters()] == flags
    assert resnet.training and all(m.training for m in resnet.modules())
    assert torch.is_grad_enabled()


def test_tap_removes_hooks_when_forward_raises(tiny):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny

        def forward(self, x):
            self.inner(x)
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"), Tap(model, "inner.features"):
        model(torch.randn(1, 3, 8, 8))
    assert all_hooks(model) == 0
    assert torch.is_grad_enabled()


def test_unknown_layer_lists_valid_names_closest_first(resnet):
    with pytest.raises(ValueError) as error:
        Tap(resnet, "layer5")
    message = str(error.value)
    assert message.startswith("no layer named 'layer5' in ResNet; valid names, closest first: ")
    listed = message.split(": ", 1)[1].split(", ")
    assert listed[:2] == ["layer4", "layer3"] and "fc" in listed and "conv1" in listed


def test_target_list_of_wrong_length_raises(tiny):
    with pytest.raises(ValueError, match="2 target classes for a batch of 3"):
        explain(tiny, torch.randn(3, 3, 8, 8), ClassLogit([1, 2]), "features")


def test_layer_followed_by_an_inplace_operation_can_be_tapped(resnet):
    images = torch.randn(2, 3, 32, 32)
    # layer4.1.bn2's output is modified in place (out += identity) right after the layer.
    ours = explain(resnet, images, ClassLogit([0, 1]), "layer4.1.bn2")
    theirs = LayerGradCam(resnet, resnet.layer4[1].bn2).attribute(
        images, target=[0, 1], relu_attributions=True
    )
    torch.testing.assert_close(ours.raw, theirs.squeeze(1).detach(), atol=1e-5, rtol=0)


def test_gradients_need_one_score_per_tapped_row(tiny):
    with Tap(tiny, "features", replicas=2) as tap:
        logits = tiny(torch.randn(3, 3, 8, 8))
    assert tap.activations.shape[0] == 6  # 3 images x 2 replicas
    with pytest.raises(ValueError, match="got 3 scores for 6 tapped rows"):
        grad_cam(tap, ClassLogit(0)(logits[::2]))


def test_layer_that_never_ran_is_reported(tiny):
    with Tap(tiny, "fc") as tap:
        pass
    with pytest.raises(RuntimeError, match="layer 'fc' did not run"):
        grad_cam(tap, torch.zeros(1, requires_grad=True))


def test_layercam_fusion_is_the_maximum_of_pytorch_grad_cams_layer_maps(resnet):
    # pytorch-grad-cam averages several layers' maps; the LayerCAM paper takes their
    # element-wise maximum: its per-layer maps (normalised, upsampled), maximum, rescaled.
    torch.manual_seed(3)
    images, classes = torch.randn(2, 3, 64, 64), [3, 7]
    with Taps(resnet, ["layer3", "layer4"]) as taps:
        scores = ClassLogit(classes)(resnet(images))
    ours = fused_maps(taps.gradients(scores), scores, "layercam", size=(64, 64))
    targets = [ClassifierOutputTarget(c) for c in classes]
    layer_maps = []
    for layer in (resnet.layer3, resnet.layer4):
        with LayerCAM(model=resnet, target_layers=[layer]) as cam:
            layer_maps.append(cam(images, targets=targets))
    theirs = np.maximum(*layer_maps)
    low = theirs.min(axis=(1, 2), keepdims=True)
    theirs = (theirs - low) / (theirs.max(axis=(1, 2), keepdims=True) - low)
    assert not ours.empty.any()
    np.testing.assert_allclose(ours.maps.numpy(), theirs, atol=1e-5, rtol=0)
    # ... and differs from either layer alone, so both layers count.
    for layer in ("layer3", "layer4"):
        single = explain(resnet, images, ClassLogit(classes), layer, method="layercam")
        assert (single.maps - ours.maps).abs().max() > 0.05


def test_taps_listed_top_down_are_refused(resnet):
    with pytest.raises(RuntimeError, match="from the input up"):
        with Taps(resnet, ["layer4", "layer3"]):
            resnet(torch.randn(1, 3, 32, 32))
