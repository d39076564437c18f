"""The model-parameter randomisation check (Adebayo et al. 2018) for a transformer captioner's
attention methods: every caption word's map from the trained BLIP model against the map of the
same word, image and caption after its layers are re-initialised from the top down (cascading).

The captions are the trained model's and stay fixed on the randomised copies, as in the paper.
"Top layer" is the first cascading step (the last module the forward pass runs: the decoder's
output projection), "all layers" the last; a layer whose modules cannot be re-initialised as
built (the vision embeddings' class and position parameters have no `reset_parameters`) is left
out and named. Low rank correlation is what a map that reads the model should give; a
target-independent map that reads no gradient (rollout) cannot change when only the output
layer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mmcam.evaluation.map_similarity import spearman
from mmcam.evaluation.randomization import parameter_layers, randomized_models, resettable
from mmcam.explainers.attention_stack import CaptionStackExplainer

__all__ = ["AttentionSanity", "caption_attention_sanity"]


@dataclass
class AttentionSanity:
    """Mean signed Spearman correlation per method after the top layer and after all layers,
    over `words` word maps (a flat map's pair left out); `top_layer` names the first step,
    `skipped` the layers left out."""

    top_layer: str
    words: int
    after_top: dict[str, float]
    after_all: dict[str, float]
    skipped: list[str]


def caption_attention_sanity(
    captioner: nn.Module, images: Tensor, methods: Sequence[str] | None = None, *, seed: int = 0
) -> AttentionSanity:
    """The check on `images` `[B, 3, H, W]` for a BLIP captioner adapter."""
    methods = list(methods or CaptionStackExplainer.offered())
    generated = captioner.generate(images)
    kept = [row for row, caption in enumerate(generated) if caption]
    images, captions = images[kept], [generated[row] for row in kept]
    trained = _word_maps(captioner, images, captions, methods)
    layers = parameter_layers(captioner, lambda model: model.generate(images[:1], 3))
    usable = [layer for layer in layers if resettable(captioner, layer)]
    after: dict[str, dict[str, float]] = {"top": {}, "all": {}}
    for step, (_, randomized) in enumerate(randomized_models(captioner, usable, "cascading", seed)):
        if step not in (0, len(usable) - 1):  # the copy changes in place: read the two steps
            continue
        maps = _word_maps(randomized, images, captions, methods)
        key = "top" if step == 0 else "all"
        for method in methods:
            after[key][method] = float(np.nanmean(spearman(trained[method], maps[method])))
    skipped = [layer for layer in layers if layer not in usable]
    words = int(trained[methods[0]].shape[0])
    return AttentionSanity(usable[-1], words, after["top"], after["all"], skipped)


def _word_maps(
    captioner: nn.Module, images: Tensor, captions: list[list[int]], methods: Sequence[str]
) -> dict[str, Tensor]:
    """Every word's raw map `[W, h, w]` (all captions' words in a row) per method."""
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    maps = {}
    for method in methods:
        result = explainer.explain(images, captions, method=method)
        maps[method] = torch.cat(
            [result.words.raw[row, : len(caption)] for row, caption in enumerate(captions)]
        )
    return maps
