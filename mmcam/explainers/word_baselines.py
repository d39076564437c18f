"""The ways other libraries get one map per word, for the caption benchmarks to beat.

* `maps_forward_backward_per_word`: what a Captum or pytorch-grad-cam user must do — one
  forward and one backward per word (Captum's `LayerGradCam` with a per-word forward function).
* `maps_retained_graph`: torchcam's way — one forward recording the whole graph, then one
  backward per word with the graph retained.
* `attention_maps_per_word`: Chefer et al.'s public implementation's way for a transformer —
  one forward and one backward per word, each word's attention method computed from that pass.

Each takes a model in eval mode and returns raw maps `[B, T, h, w]` equal to the batched
explainer's (`CaptionExplainer`'s Grad-CAM, `CaptionStackExplainer`'s attention methods; the
tests check), so the benchmarks compare equal work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcam.core.protocols import CaptionModel
from mmcam.core.tap import find_layer
from mmcam.core.targets import token_logprobs
from mmcam.explainers.attention_stack import AttentionTaps, CaptionStackExplainer, key_grid
from mmcam.explainers.rows import WordReplicas, caption_tokens
from mmcam.methods import registry
from mmcam.methods.attention import AttentionStack
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


def attention_maps_per_word(
    explainer: CaptionStackExplainer,
    images: Tensor,
    captions: Sequence[Sequence[int]],
    method: str = "relevance",
) -> Tensor:
    """`explainer`'s word maps by attention method `method`, one forward and one backward pass
    per word (the same taps and rules, one target at a time)."""
    model, layout = explainer.model, explainer.layout
    function = registry.get(method, explainer.explainer_id).function
    words = WordReplicas.of(model, captions, explainer.include_end, images.device)
    positions = torch.arange(words.tokens.shape[1], device=images.device)[None]
    maps = []
    for position in range(words.steps):
        with AttentionTaps(model, layout) as taps:
            logits = model.decode_logits(model.encode(images), words.tokens, words.scored)
        scores = token_logprobs(logits, words.tokens, words.scored)[:, position, None]
        layers = layout.split(taps.gradients(scores))
        taps.release()
        stack = AttentionStack(
            rows=(positions == position).expand(len(captions), -1),
            context=(positions <= position).expand(len(captions), -1),
            layer=layout.layer,
            **layers,
        )
        maps.append(key_grid(explainer.to_grid, function(stack)))
    return torch.stack(maps, dim=1) * words.valid[..., None, None]
