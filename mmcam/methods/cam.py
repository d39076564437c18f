"""From a tap and target scores to an `Explanation`: the CAM family in one place.

Two forms. The user runs the model, so models with several inputs work unchanged::

    with Tap(model, "layer4") as tap:
        scores = ClassLogit(labels)(model(images))
    explanation = grad_cam(tap, scores, size=images.shape[-2:])

or, for a single-input model, `explain(model, images, ClassLogit(labels), "layer4")`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcam.core.explanation import (
    Explanation,
    negligible_ratio,
    normalize_maps,
    upsample_maps,
)
from mmcam.core.model_state import explaining
from mmcam.core.tap import Tap
from mmcam.core.targets import ClassLogit, Target
from mmcam.methods.formulas import cam_weights, gradient_map, signed_map, weighted_map


def grad_cam(
    tap: Tap,
    scores: Tensor,
    method: str = "gradcam",
    size: Sequence[int] | None = None,
    labels: list | None = None,
) -> Explanation:
    """Maps of `scores` (one per tapped row) by a gradient method: gradcam, gradcam++,
    counterfactual, hirescam. `size` is the input's (H, W) to upsample to; the tap's activations are
    released afterwards.

    Args:
        tap: the `Tap` whose `with` block ran the model (it holds the layer's output A).
        scores: one scalar per tapped row, computed from the model's output inside the block
            (`[B]`, or `[B, R]` with `replicas=R`), e.g. `ClassLogit(labels)(logits)`.
        method: a gradient method of the registry: `"gradcam"`, `"gradcam++"`, `"hirescam"`,
            `"layercam"`, `"counterfactual"`.
        size: the input's (H, W) that `maps` are upsampled to (bilinear); None keeps the layer's.
        labels: one label per map, kept in `Explanation.labels`.

    Returns:
        The `Explanation`: `raw` maps at the layer's resolution, `maps` upsampled and scaled to
        [0, 1] (a flat map is zeros, flagged in `empty`), and the scores.

    Raises:
        RuntimeError: the layer did not run inside the `with Tap(...)` block.
        ValueError: not one score per tapped row, scores that do not depend on the layer, a
            layer output that is not a `[N, K, h, w]` grid, or an unknown method.
    """
    activations, gradients = tap.gradients(scores)  # [N, K, h, w] each
    tap.release()
    return maps_from_gradients(activations, gradients, scores, method, size, labels)


def maps_from_gradients(
    activations: Tensor,
    gradients: Tensor,
    scores: Tensor,
    method: str = "gradcam",
    size: Sequence[int] | None = None,
    labels: list | None = None,
) -> Explanation:
    """The `Explanation` of `scores` from A and dY/dA grids `[N, K, h, w]`, N = scores.numel().

    A map whose terms cancel out is flagged empty, not stretched to [0, 1] (`negligible_maps`)."""
    raw = gradient_map(method, activations, gradients)  # [N, h, w]
    negligible = negligible_maps(method, activations, gradients, raw)
    raw = raw.reshape(*scores.shape, *raw.shape[-2:])
    negligible = negligible.reshape(scores.shape)
    return Explanation.from_raw(raw, scores, _size(size), method, labels, negligible)


def negligible_maps(method: str, activations: Tensor, gradients: Tensor, raw: Tensor) -> Tensor:
    """`[N]` bool: map n is rounding noise. Criterion: its largest value is at most
    `negligible_ratio` (1.2e-4 in float32 and float64, 4 epsilons in float16 / bfloat16) times
    the largest value of the uncancelled map, the same method on |A| and |dY/dA| (every term
    counted with its magnitude, none cancelling), compared in at least float32. A K-term float
    sum carries a rounding error of about K eps of its terms' magnitude, so a map that small
    shows the rounding, or a cancellation no precision would show as evidence, not the model:
    HiResCAM on a model that normalises each cell's features (sum_k G_k A_k = 0 exactly there,
    by Euler's theorem for a scale-invariant function)."""
    precise = torch.promote_types(raw.dtype, torch.float32)
    magnitudes = activations.abs().to(precise), gradients.abs().to(precise)
    uncancelled = signed_map(method)(*magnitudes).abs().flatten(-2).amax(dim=-1)
    peak = raw.flatten(-2).amax(dim=-1).to(precise)
    ratio = negligible_ratio(activations.dtype, gradients.dtype)
    return (peak > 0) & (peak <= ratio * uncancelled)


def fused_maps(
    grids: Sequence[tuple[Tensor, Tensor]],
    scores: Tensor,
    method: str = "layercam",
    size: Sequence[int] | None = None,
    labels: list | None = None,
) -> Explanation:
    """One `Explanation` from several layers' A and dY/dA grids (listed from the input up), by
    the multi-layer fusion of LayerCAM (Jiang et al., IEEE TIP 2021, sec. III-C): each layer's
    map by `method`, upsampled to `size` (the first, largest grid's when None) and min-max
    normalised, and their element-wise maximum. One layer gives `maps_from_gradients`' result; with
    several, `raw` holds the fused map at `size`.

    Args:
        grids: each layer's (A, dY/dA) pair of `[N, K, h, w]` grids, from the input up, as
            `Taps.gradients` returns them.
        scores: the scores the gradients are of, one per row.
        method: the gradient method each layer's map is made by (default LayerCAM).
        size: the (H, W) the maps are fused (and upsampled) at; None: the first grid's.
        labels: one label per map.

    Returns:
        One `Explanation` whose `raw` is the fused map (several layers) or the layer's map (one).

    Raises:
        ValueError: an unknown method.
    """
    if len(grids) == 1:
        return maps_from_gradients(*grids[0], scores, method, size, labels)
    size = _size(size) or tuple(grids[0][0].shape[-2:])
    layer_maps = []
    for activations, gradients in grids:
        raw = gradient_map(method, activations, gradients)  # [N, h, w]
        upsampled = upsample_maps(raw.reshape(*scores.shape, *raw.shape[-2:]), size)
        layer_maps.append(normalize_maps(upsampled)[0])
    fused = torch.stack(layer_maps).amax(dim=0)
    return Explanation.from_raw(fused, scores, size, method, labels)


def class_activation_map(
    tap: Tap,
    linear: nn.Linear,
    target: ClassLogit,
    logits: Tensor,
    size: Sequence[int] | None = None,
) -> Explanation:
    """CAM: the tapped grid weighted by the rows of the final `linear` layer of a GAP network.

    M_c = sum_k w_ck A_k (Zhou et al., CVPR 2016); needs no gradient.

    Args:
        tap: the `Tap` on the last convolutional layer, whose `with` block ran the model.
        linear: the classifier layer after global average pooling; its row c weighs class c.
        target: the class of each image.
        logits: the model's output `[B, C]`, for the explained scores.
        size: the input's (H, W) to upsample the maps to; None keeps the layer's.

    Returns:
        The `Explanation` of each image's class, method `"cam"`.

    Raises:
        RuntimeError: the layer did not run inside the `with Tap(...)` block.
        ValueError: not one class per image, or a layer output that is not a `[N, K, h, w]` grid.
    """
    if tap.activations is None:
        raise RuntimeError(f"layer {tap.name!r} did not run inside the `with Tap(...)` block")
    activations = tap.grid(tap.activations.detach())  # [B, K, h, w]
    tap.release()
    classes = target.indices(activations.shape[0], activations.device)
    raw = weighted_map(activations, cam_weights(linear, classes))
    return Explanation.from_raw(raw, target(logits), _size(size), "cam")


def explain(
    model: nn.Module,
    inputs: Tensor,
    target: Target,
    layer: str | nn.Module,
    method: str = "gradcam",
) -> Explanation:
    """One call for a single-input model: run it on `inputs` [B, C, H, W] and explain `target`.

    The model is explained as the explainers explain it (`explaining`: eval mode, parameters
    frozen) and comes back exactly as it went in, also when the forward raises.

    Args:
        model: a model called as `model(inputs)`.
        inputs: the preprocessed images `[B, C, H, W]`.
        target: what is explained, one scalar per image from the model's output, e.g.
            `ClassLogit(labels)`.
        layer: the layer to explain: a dotted module name (`"layer4"`), the module itself, or
            `"input"`.
        method: a gradient method of the registry (see `grad_cam`).

    Returns:
        The `Explanation`, maps upsampled to the inputs' (H, W).

    Raises:
        ValueError: an unknown layer name (the message lists the valid ones, closest first), a
            target that does not give one score per image, or an unknown method.
    """
    with explaining(model, inputs.device):
        with Tap(model, layer) as tap:
            scores = target(model(inputs))
        return grad_cam(tap, scores, method, size=inputs.shape[-2:])


def _size(size: Sequence[int] | None) -> tuple[int, int] | None:
    return None if size is None else (int(size[0]), int(size[1]))
