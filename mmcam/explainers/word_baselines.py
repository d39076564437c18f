"""The two ways other libraries get one map per word, for the caption benchmark to beat.

* `maps_forward_backward_per_word`: what a Captum or pytorch-grad-cam user must do — one
  forward and one backward per word (Captum's `LayerGradCam` with a per-word forward function).
* `maps_retained_graph`: torchcam's way — one forward recording the whole graph, then one
  backward per word with the graph retained.

Both take a model in eval mode and return raw Grad-CAM maps `[B, T, h, w]` equal to
`CaptionExplainer`'s (the tests check), so the benchmark compares equal work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcam.core.protocols import CaptionModel
from mmcam.core.tap import find_layer
from mmcam.core.targets import token_logprobs
from mmcam.explainers.rows import caption_tokens
from mmcam.methods.formulas import gradient_map


def _teacher_forcing(model: CaptionModel, captions: Sequence[Sequence[int]], device):
    return caption_tokens(captions, model.bos_index, model.eos_index, model.pad_index, device)


def maps_forward_backward_per_word(
    model: CaptionModel, layer: str, images: Tensor, captions: Sequence[Sequence[int]]
) -> Tensor:
    """Captum `LayerGradCam`, once per word position (Captum is a dev dependency)."""
    from captum.attr import LayerGradCam

    tokens, counts = _teacher_forcing(model, captions, images.device)
    _, module = find_layer(model, layer)
    maps = []
    for position in range(int(counts.max())):

        def word_logprob(x: Tensor, position: int = position) -> Tensor:
            logits = model.decode_logits(model.encode(x), tokens, counts)
            return token_logprobs(logits, tokens, counts)[:, position]

        attribution = LayerGradCam(word_logprob, module).attribute(images, relu_attributions=True)
        maps.append(attribution.squeeze(1).detach())
    return torch.stack(maps, dim=1)


def maps_retained_graph(
    model: CaptionModel, layer: str, images: Tensor, captions: Sequence[Sequence[int]]
) -> Tensor:
    """One recorded forward, then one backward per word through the retained graph."""
    tokens, counts = _teacher_forcing(model, captions, images.device)
    _, module = find_layer(model, layer)
    recorded: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, output: recorded.append(output))
    try:
        logits = model.decode_logits(model.encode(images), tokens, counts)
    finally:
        handle.remove()
    logp = token_logprobs(logits, tokens, counts)  # [B, L-1]
    (activations,) = recorded
    maps = []
    steps = int(counts.max())
    for position in range(steps):
        (gradients,) = torch.autograd.grad(
            logp[:, position].sum(), activations, retain_graph=position < steps - 1
        )
        maps.append(gradient_map("gradcam", activations.detach(), gradients))
    return torch.stack(maps, dim=1)
