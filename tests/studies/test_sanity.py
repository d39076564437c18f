"""Model-parameter randomisation checks driven through mmcam's methods: equal to Quantus's MPRT
on a torchvision classifier, 1 where a method provably ignores the top layer, and the user's
model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from tiny_models import TinyCaptioner, TinyVQA
from torch import nn

from mmcam.core.explanation import upsample_maps
from mmcam.core.targets import ClassLogit
from mmcam.methods import explain, guided_backprop, guided_grad_cam, occlusion
from mmcam.studies.sanity import (
    caption_rows,
    classifier_rows,
    model_randomization,
    signed_maps,
    vqa_rows,
)

quantus = pytest.importorskip("quantus")


@pytest.fixture(scope="module")
def squeezenet() -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[str]]:
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(num_classes=3).eval()
    images = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        labels = model(images).argmax(1)
    # Quantus's order: every module with reset_parameters, in registration order
    layers = [n for n, m in model.named_modules() if hasattr(m, "reset_parameters")]
    return model, images, labels, layers


@pytest.mark.parametrize(
    ("method", "order", "quantus_order", "absolute"),
    [
        ("gradcam", "cascading", "top_down", False),
        ("guided_backprop", "independent", "independent", True),
    ],
)
def test_similarities_equal_quantus_mprt(squeezenet, method, order, quantus_order, absolute):
    model, images, labels, layers = squeezenet

    def explain(model, inputs, targets, **_):  # noqa: ANN001, ANN202 (Quantus's signature)
        rows = classifier_rows(torch.as_tensor(inputs), targets, "features.12")
        return signed_maps(rows, model, [method])[method].detach().numpy()

    rows = classifier_rows(images, labels, "features.12")
    ours = model_randomization(model, rows, methods=[method], layers=layers, orders=[order], seed=1)
    # Quantus seeds each reset with seed + 1, mmcam with seed
    metric = quantus.MPRT(
        layer_order=quantus_order, seed=0, abs=absolute, normalise=absolute,
        disable_warnings=True, display_progressbar=False,
    )  # fmt: skip
    theirs = metric(
        model=model, x_batch=images.numpy(), y_batch=labels.numpy(),
        a_batch=explain(model, images, labels), explain_func=explain, batch_size=len(images),
        channel_first=True,
    )  # fmt: skip
    measure = "spearman_abs" if absolute else "spearman"
    assert set(theirs) == {"original", *layers}
    compared = 0
    for layer in layers:
        mine = getattr(ours.similarity[order][layer][method], measure)
        np.testing.assert_allclose(mine, theirs[layer], atol=1e-5)
        compared += int(np.isfinite(mine).sum())
    assert compared > len(layers)  # most steps gave maps that are not flat


class PositiveHead(nn.Module):
    """A linear head whose weights are positive before and after re-initialisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, 0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T


class ConvThenHead(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.head = PositiveHead(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_a_map_that_provably_ignores_the_top_layer_scores_one_and_one_that_cannot_less():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 16, 16)
    # One channel: every gradient below the head is the head's weight times a map the head does
    # not change, and the weight stays positive, so each map is a positive multiple of itself.
    single = ConvThenHead(1)
    rows = classifier_rows(images, [0, 0, 0], "conv")
    methods = ["gradcam", "hirescam", "guided_backprop", "deconvnet", "guided_gradcam"]
    result = model_randomization(single, rows, methods=methods, layers=["head"], seed=5)
    for method in methods:
        means = result.similarity["cascading"]["head"][method].means()
        assert means["flat"] == 0.0
        for measure in ("spearman", "spearman_abs", "ssim", "hog"):
            assert means[measure] == pytest.approx(1.0, abs=1e-6), (method, measure)
    # Three channels: the head mixes the channel maps, and new weights mix them differently.
    mixed = ConvThenHead(3)
    with torch.no_grad():  # channel c sees colour c only: three unrelated channel maps
        mixed.conv.weight.zero_()
        mixed.conv.bias.zero_()
        mixed.conv.weight[[0, 1, 2], [0, 1, 2], 1, 1] = 1.0
        mixed.head.weight.copy_(torch.tensor([[0.5, 2.0, 0.5]]))  # trained: mostly green
    result = model_randomization(mixed, rows, methods=["gradcam"], layers=["head"], seed=5)
    assert result.similarity["cascading"]["head"]["gradcam"].means()["spearman"] < 0.9


def _snapshot(model: nn.Module) -> tuple[dict, dict]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return state, {name: m.training for name, m in model.named_modules()}


def _assert_same(model: nn.Module, snapshot: tuple[dict, dict]) -> None:
    state, modes = snapshot
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], state[k]) for k in state)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(p.grad is None for p in model.parameters())


def test_the_users_captioner_and_vqa_model_are_bit_identical_after_a_check():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    captioner = TinyCaptioner().train()
    captioner.encoder.eval()
    snapshot = _snapshot(captioner)
    rows = caption_rows(captioner, images, [[3, 4, 5], [6, 7]], "encoder.features")
    assert rows.kinds == ["word"] * 5 + ["caption"] * 2
    layers = ["encoder.body", "encoder.features", "spatial", "embed", "lstm", "out"]
    result = model_randomization(
        captioner, rows, methods=["gradcam", "occlusion"], layers=layers, occlusion_grid=(4, 2)
    )
    _assert_same(captioner, snapshot)
    assert result.steps == layers[::-1]
    assert set(result.similarity["independent"]) == set(layers)

    vqa = TinyVQA().train()
    snapshot = _snapshot(vqa)
    rows = vqa_rows(vqa, images, ["what color is it", "is it red"], "image.features", top_k=2)
    with torch.no_grad():
        best = vqa(images, vqa.tokenize(["what color is it", "is it red"])).topk(2).indices
    assert rows.target.classes.tolist() == best.flatten().tolist()  # the trained model's answers
    layers = ["image.body", "image.features", "spatial", "embed", "lstm", "classify"]
    model_randomization(vqa, rows, methods=["hirescam", "guided_backprop"], layers=layers)
    _assert_same(vqa, snapshot)


def test_signed_maps_are_the_public_methods_maps(tiny_classifier):
    model, images = tiny_classifier
    classes = torch.tensor([1, 3, 0])
    target = ClassLogit(classes)
    rows = classifier_rows(images, classes, "features")
    maps = signed_maps(rows, model, occlusion_grid=(4, 2))
    size = tuple(images.shape[-2:])
    for method in ("gradcam", "gradcam++", "hirescam"):
        expected = upsample_maps(explain(model, images, target, "features", method).raw, size)
        torch.testing.assert_close(maps[method], expected)
    guided = guided_backprop(model, images, target).raw.sum(dim=1)
    torch.testing.assert_close(maps["guided_backprop"], guided)
    both = guided_grad_cam(model, images, target, model, "features").raw.sum(dim=1)
    torch.testing.assert_close(maps["guided_gradcam"], both)
    drop = occlusion(model, images, target, window=4, stride=2).raw[:, 0]
    torch.testing.assert_close(maps["occlusion"], drop)
