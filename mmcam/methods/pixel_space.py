"""Pixel-space gradient methods: guided backpropagation, deconvnet, guided Grad-CAM and the
strongest feature map, all from one modified ReLU backward rule.

The rule is installed without touching the model (`mmcam.methods.relu_rules`): every
ReLU-family call of the forward pass, modules and functional calls alike, backpropagates by it
inside a `with` block, so the model is exactly as before on every exit.

The rule applies to the activations whose negative side is flat or linear (ReLU, ReLU6 and
other clipped ReLUs, LeakyReLU with slope >= 0). Smooth activations (GELU, SiLU, ELU, tanh,
...) keep their ordinary gradient; a forward pass that calls no activation of the family gets
a warning, because the result is then the plain input gradient.

Maps: `raw` keeps the signed attribution `[B, 3, H, W]` (`[B, T, 3, H, W]` for T targets per
image); `maps` is max_c |raw| normalised to [0, 1] `[B, H, W]` (`[B, T, H, W]`). The sign at
the input is the sign of first-layer filter weights, not evidence for or against the target,
so the magnitude is what a heat map should show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcam.core.explanation import Explanation, normalize_maps
from mmcam.core.model_state import explaining
from mmcam.core.tap import Tap, find_layer
from mmcam.core.targets import Target
from mmcam.methods import registry
from mmcam.methods.deprecated import deprecated_list
from mmcam.methods.formulas import gradient_map
from mmcam.methods.layer_output import LayerReached
from mmcam.methods.perturbation import ChunkSize, occlusion
from mmcam.methods.relu_rules import RULES, ReluRule, relu_rule  # re-exported: their former home

__all__ = [
    "RULES",
    "ReluRule",
    "deconvnet",
    "guided_backprop",
    "guided_grad_cam",
    "perturbation_maps",
    "pixel_explanation",
    "pixel_explanations",
    "relu_rule",
    "rule_attributions",
    "rule_gradients",
    "strongest_feature_map",
]

Forward = Callable[..., Any]


def __getattr__(name: str) -> object:
    """The method lists of earlier releases, read from the registry (deprecated): RULE_METHODS
    (id -> rule), PERTURBATION_METHODS (id -> sweep), EXPLAINER_METHODS and PIXEL_SPACE_METHODS
    (ids), with the contents they had (guided Grad-CAM, a rule method with a `times`, was in
    none of them)."""
    rules = [m for m in registry.methods(kind="rule") if m.times is None]
    sweeps = registry.methods(kind="perturbation")
    lists = {
        "RULE_METHODS": (rules, "function"),
        "PERTURBATION_METHODS": (sweeps, "function"),
        "EXPLAINER_METHODS": ([*registry.methods(kind="gradient"), *rules, *sweeps], None),
        "PIXEL_SPACE_METHODS": ([*rules, *sweeps], None),
    }
    if name not in lists:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return deprecated_list(__name__, name, *lists[name])


def rule_gradients(
    rule: str,
    forward: Forward,
    images: Tensor,
    target: Target,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> tuple[Tensor, Tensor]:
    """The input gradient of `target` under `rule` `[B, 3, H, W]`, and the scores `[B]`.

    `model` (default: `forward` itself when it is a module) runs in eval mode, so rows of a
    batch do not interact; its mode is restored on exit."""
    model = _model_of(forward, model)
    inputs = images.detach().requires_grad_(True)
    state = explaining(model, images.device) if model is not None else nullcontext()
    with state, torch.enable_grad(), relu_rule(rule):
        scores = target(forward(inputs, *forward_args))
        _check_scores(scores, images)
        (gradients,) = torch.autograd.grad(scores.sum(), inputs)
    return gradients, scores.detach()


def perturbation_maps(
    method: registry.Method,
    forward: Forward,
    images: Tensor,
    target: Target,
    model: nn.Module,
    forward_args: Sequence[Any],
    labels: list,
    options: Mapping[str, Any] | None = None,
) -> Explanation:
    """Perturbation `method` (a registry record: occlusion, RISE) of a target with T scores per
    image `[n, T]`, all from one sweep: raw `[B, T, H, W]` (occlusion's drop once, not per
    channel), maps `[B, T, H, W]`, scores `[B, T]`. `options` are the method's keyword arguments
    (occlusion: window, stride, fill, batch_size; RISE: n_masks, cell, p, batch_size, seed,
    fill)."""
    explained = method.function(
        forward, images, target, model=model, forward_args=forward_args, **(options or {})
    )
    raw = explained.raw
    if raw.dim() > explained.maps.dim():  # a drop per channel, the same in every channel
        raw = raw[:, :, 0]
    return Explanation(raw, explained.maps, explained.empty, explained.scores, method.id, labels)


def pixel_explanation(
    raw: Tensor, scores: Tensor, method: str, labels: list | None = None
) -> Explanation:
    """An `Explanation` of signed pixel attributions `[..., C, H, W]`: maps = max_c |raw|."""
    maps, empty = normalize_maps(raw.abs().amax(dim=-3))  # [..., H, W]
    return Explanation(raw, maps, empty, scores.detach(), method, labels or [])


def guided_backprop(
    forward: Forward,
    images: Tensor,
    target: Target,
    *,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Guided backpropagation (Springenberg et al. 2015): the input gradient where every ReLU
    passes back only positive gradients at positive inputs, dR/dx = 1[x > 0] max(dR/dy, 0).

    `forward(images, *forward_args)` returns the model output and `target` one score per image
    (class, caption, word or VQA answer; each image its own). The rule reaches every ReLU-family
    call the forward makes, modules and functional calls alike, so `model` is only needed when
    `forward` is not the module itself: it runs in eval mode for the call (mode restored).

    Args:
        forward: the callable run as `forward(images, *forward_args)` that returns the model's
            output (usually the model itself).
        images: the preprocessed images `[B, C, H, W]`.
        target: one score per image from the output (a class, caption, word or VQA answer).
        model: the module to run in eval mode when `forward` is not the module itself.
        forward_args: the model's other inputs (a question's tokens), passed after the images.

    Returns:
        The `Explanation`: `raw` holds the signed input attributions `[B, C, H, W]`, `maps` their
        largest absolute value over the colour channels, scaled to [0, 1] (`[B, H, W]`).

    Raises:
        ValueError: the target does not give one score per image.
    """
    gradients, scores = rule_gradients("guided", forward, images, target, model, forward_args)
    return pixel_explanation(gradients, scores, "guided_backprop")


def deconvnet(
    forward: Forward,
    images: Tensor,
    target: Target,
    *,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Deconvnet (Zeiler & Fergus 2014): every ReLU passes back max(dR/dy, 0), whatever its input
    was; max-pooling switches and transposed convolutions are the ordinary gradient.

    Args:
        forward: the callable run as `forward(images, *forward_args)` that returns the model's
            output (usually the model itself).
        images: the preprocessed images `[B, C, H, W]`.
        target: one score per image from the output (a class, caption, word or VQA answer).
        model: the module to run in eval mode when `forward` is not the module itself.
        forward_args: the model's other inputs, passed after the images.

    Returns:
        The `Explanation`: `raw` holds the signed input attributions `[B, C, H, W]`, `maps` their
        largest absolute value over the colour channels, scaled to [0, 1] (`[B, H, W]`).

    Raises:
        ValueError: the target does not give one score per image.
    """
    gradients, scores = rule_gradients("deconvnet", forward, images, target, model, forward_args)
    return pixel_explanation(gradients, scores, "deconvnet")


def guided_grad_cam(
    forward: Forward,
    images: Tensor,
    target: Target,
    model: nn.Module,
    layer: str | nn.Module,
    *,
    mode: str = "bilinear",
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times the Grad-CAM map of `layer`
    upsampled to the input (`mode` "bilinear", or "nearest" as Captum's default).

    Args:
        forward: the callable run as `forward(images, *forward_args)` that returns the model's
            output (usually the model itself).
        images: the preprocessed images `[B, C, H, W]`.
        target: one score per image from the output (a class, caption, word or VQA answer).
        model: the model that contains `layer` (run in eval mode for the call).
        layer: the layer whose Grad-CAM map weighs the guided gradients (name or module).
        mode: how the Grad-CAM map is upsampled to the input: "bilinear" or "nearest".
        forward_args: the model's other inputs, passed after the images.

    Returns:
        The `Explanation`: `raw` holds the signed input attributions `[B, C, H, W]`, `maps` their
        largest absolute value over the colour channels, scaled to [0, 1] (`[B, H, W]`).

    Raises:
        ValueError: an unknown layer name, or a target that does not give one score per image.
    """
    raw, scores = rule_attributions(
        "guided", "gradcam", forward, images, target, model, layer, forward_args, mode=mode
    )
    return pixel_explanation(raw, scores, "guided_grad_cam")


def rule_attributions(
    rule: str,
    times: str | None,
    forward: Forward,
    images: Tensor,
    target: Target,
    model: nn.Module | None = None,
    layer: str | nn.Module | None = None,
    forward_args: Sequence[Any] = (),
    *,
    mode: str = "bilinear",
) -> tuple[Tensor, Tensor]:
    """A rule method's signed attributions `[B, 3, H, W]` and scores `[B]`: the input gradient
    under `rule`, times the map of gradient method `times` at `layer` upsampled to the input
    when given (guided Grad-CAM: rule "guided", times "gradcam")."""
    if times is None:
        return rule_gradients(rule, forward, images, target, model, forward_args)
    if model is None or layer is None:
        raise ValueError(f"{rule} x {times} needs the model and the layer {times} reads")
    with explaining(model, images.device):
        with Tap(model, layer) as tap:
            scores = target(forward(images, *forward_args))
            _check_scores(scores, images)
        activations, grads = tap.gradients(scores)  # [B, K, h, w] each
        tap.release()
        cam = gradient_map(times, activations, grads)  # [B, h, w]
        ruled, _ = rule_gradients(rule, forward, images, target, None, forward_args)
    upsampled = F.interpolate(cam[:, None], size=images.shape[-2:], mode=mode)  # [B, 1, H, W]
    return ruled * upsampled, scores.detach()


def strongest_feature_map(
    forward: Forward,
    images: Tensor,
    model: nn.Module,
    layer: str | nn.Module,
    target: Target | None = None,
    *,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Zeiler & Fergus (2014): at `layer`, the channel k* with the largest total activation
    sum_ij A_k,ij of each image, projected to pixel space by the deconvnet rule with every other
    channel set to zero: R = d<A_k* , A_k*>/dx under deconvnet ReLUs.

    The channel does not depend on a target. Without `target` the forward stops at `layer` and
    `scores` are the channels' total activations; with one, `scores` are the target's scores
    (the pass then runs to the end). `labels` name the channels.

    Args:
        forward: the callable run as `forward(images, *forward_args)` (usually the model).
        images: the preprocessed images `[B, C, H, W]`.
        model: the model that contains `layer` (run in eval mode for the call).
        layer: the layer whose strongest channel is projected (name or module).
        target: optional; its scores become the `Explanation`'s scores.
        forward_args: the model's other inputs, passed after the images.

    Returns:
        The `Explanation` of each image's strongest channel (`labels`: "<layer> channel k").

    Raises:
        ValueError: an unknown layer name, or a layer whose output is not `[B, K, h, w]`.
        RuntimeError: the layer did not run in the forward pass.
    """
    name, module = find_layer(model, layer)
    inputs = images.detach().requires_grad_(True)
    recorded: dict[str, Tensor] = {}

    def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
        recorded["A"] = output[0] if isinstance(output, tuple | list) else output
        if target is None:
            raise LayerReached

    handle = module.register_forward_hook(record)
    try:
        with explaining(model, images.device), torch.enable_grad(), relu_rule("deconvnet"):
            try:
                output = forward(inputs, *forward_args)
            except LayerReached:
                output = None
            if "A" not in recorded:
                raise RuntimeError(f"layer {name!r} did not run in the forward pass")
            activations = recorded.pop("A")  # [B, K, h, w]
            if activations.dim() != 4:
                shape = tuple(activations.shape)
                raise ValueError(f"layer {name!r} gives {shape}, not [B, K, h, w]")
            totals = activations.detach().sum(dim=(-2, -1))  # [B, K]
            channels = totals.argmax(dim=1)  # [B]
            keep = F.one_hot(channels, activations.shape[1]).to(activations.dtype)
            seed = activations.detach() * keep[:, :, None, None]  # only channel k* stays
            (gradients,) = torch.autograd.grad(activations, inputs, grad_outputs=seed)
    finally:
        handle.remove()
    if output is not None:
        scores = target(output).detach()
    else:
        scores = totals.gather(1, channels[:, None]).squeeze(1)
    labels = [f"{name} channel {int(k)}" for k in channels]
    return pixel_explanation(gradients, scores, "strongest_feature_map", labels)


def _model_of(forward: Forward, model: nn.Module | None) -> nn.Module | None:
    """The module to put in eval mode: `model`, else `forward` when it is a module."""
    if model is not None:
        return model
    return forward if isinstance(forward, nn.Module) else None


def _check_scores(scores: Tensor, images: Tensor) -> None:
    if scores.dim() != 1 or scores.shape[0] != images.shape[0]:
        raise ValueError(
            f"the target gave scores of shape {tuple(scores.shape)} for {images.shape[0]} images; "
            "pixel methods explain one score per image"
        )


def pixel_explanations(
    forward: Forward,
    images: Tensor,
    target: Target,
    model: nn.Module,
    layer: str | nn.Module,
    *,
    window: int | Sequence[int] = 8,
    stride: int | Sequence[int] | None = None,
    fill: float | Tensor = 0.0,
    batch_size: ChunkSize = None,
    forward_args: Sequence[Any] = (),
) -> dict[str, Explanation]:
    """Every pixel-space method on one forward and target, by name: guided backprop, deconvnet,
    guided Grad-CAM (at `layer`), occlusion (`window`, `stride`, `fill`, `batch_size`) and the
    strongest feature map of `layer`. For a caption, `forward(x, tokens, lengths)` with
    `forward_args=(tokens, lengths)`; for VQA, `forward=model` with `forward_args=(questions,)`.
    """
    common = {"model": model, "forward_args": forward_args}
    return {
        "guided backprop": guided_backprop(forward, images, target, **common),
        "deconvnet": deconvnet(forward, images, target, **common),
        "guided Grad-CAM": guided_grad_cam(
            forward, images, target, model, layer, forward_args=forward_args
        ),
        "occlusion": occlusion(forward, images, target, window, stride, fill, batch_size, **common),
        "strongest feature map": strongest_feature_map(
            forward, images, model, layer, target, forward_args=forward_args
        ),
    }
