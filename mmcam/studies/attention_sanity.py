"""The model-parameter randomisation check (Adebayo et al. 2018) for the attention methods of
a transformer captioner (BLIP: every caption word) and a transformer VQA model (ViLT: the
top-k answers): each target's map from the trained model against the map of the same target
after the model's layers are re-initialised.

The targets are the trained model's (its captions, its top answers) and stay fixed on the
randomised copies, as in the paper. Cascading: from the top down, one more layer each step;
"top layer" is the first step (the last module the forward pass runs: BLIP's decoder output
projection, ViLT's answer classifier), "all layers" the last. Independent: one layer at a time,
every other layer trained, over the layers whose re-initialisation draws random weights (a
layer norm's reset to ones and zeros is left out of this order); the highest mean over those
steps is reported (the layer whose randomisation changes the maps least). A layer whose
modules cannot be re-initialised as built (embeddings' class and position parameters have no
`reset_parameters`) is left out and named.
Low rank correlation is what a map that reads the model should give; a target-independent map
that reads no gradient (rollout) cannot change when only the output layer does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmcam.evaluation.map_similarity import spearman
from mmcam.evaluation.randomization import (
    draws_weights,
    parameter_layers,
    randomized_models,
    resettable,
)
from mmcam.explainers.attention_stack import CaptionStackExplainer, VQAStackExplainer

__all__ = ["AttentionSanity", "caption_attention_sanity", "vqa_attention_sanity"]

Maps = Callable[[nn.Module], dict[str, Tensor]]  # a model's map of every target `[N, h, w]`


@dataclass
class AttentionSanity:
    """Mean signed Spearman correlation per method after the top layer and after all layers
    (cascading), and the highest mean over the one-layer randomisations (`independent`, with the
    layer that gave it), over `targets` maps (a flat map's pair left out); `top_layer` names the
    first step, `skipped` the layers left out."""

    top_layer: str
    targets: int
    after_top: dict[str, float]
    after_all: dict[str, float]
    independent: dict[str, float]
    independent_layer: dict[str, str]
    skipped: list[str]


def caption_attention_sanity(
    captioner: nn.Module, images: Tensor, methods: Sequence[str] | None = None, *, seed: int = 0
) -> AttentionSanity:
    """The check of every word of the captions a BLIP captioner adapter gives `images`."""
    methods = list(methods or CaptionStackExplainer.offered())
    generated = captioner.generate(images)
    kept = [row for row, caption in enumerate(generated) if caption]
    images, captions = images[kept], [generated[row] for row in kept]

    def maps(model: Any) -> dict[str, Tensor]:
        explainer = CaptionStackExplainer(model, model.attention_layout(), model.to_grid)
        found = {}
        for method in methods:
            words = explainer.explain(images, captions, method=method).words.raw
            found[method] = torch.cat([words[row, : len(c)] for row, c in enumerate(captions)])
        return found

    return _randomization_check(
        captioner, maps, lambda model: model.generate(images[:1], 3), methods, seed
    )


def vqa_attention_sanity(
    vqa: nn.Module,
    images: Tensor,
    questions: Sequence[str],
    methods: Sequence[str] | None = None,
    *,
    top_k: int = 3,
    seed: int = 0,
) -> AttentionSanity:
    """The check of the top-k answers a ViLT adapter gives each (image, question)."""
    methods = list(methods or VQAStackExplainer.offered())
    first = VQAStackExplainer(vqa, vqa.attention_layout(), vqa.to_grid).explain(
        images, questions, top_k=top_k, method=methods[0]
    )
    index = {answer: i for i, answer in enumerate(vqa.answers)}
    answers = torch.tensor([[index[a] for a in row] for row in first.answers])

    def maps(model: Any) -> dict[str, Tensor]:
        explainer = VQAStackExplainer(model, model.attention_layout(), model.to_grid)
        return {
            method: explainer.explain(
                images, questions, method=method, answers=answers
            ).maps.raw.flatten(0, 1)
            for method in methods
        }

    def run(model: Any) -> Any:
        return model(images[:1], model.tokenize(list(questions[:1])))

    return _randomization_check(vqa, maps, run, methods, seed)


def _randomization_check(
    model: nn.Module, maps: Maps, run: Callable[[Any], Any], methods: list[str], seed: int
) -> AttentionSanity:
    trained = maps(model)
    layers = parameter_layers(model, run)
    usable = [layer for layer in layers if resettable(model, layer)]

    def similarity(randomized: nn.Module) -> dict[str, float]:
        found = maps(randomized)
        return {m: float(np.nanmean(spearman(trained[m], found[m]))) for m in methods}

    cascading = {}
    for step, (_, randomized) in enumerate(randomized_models(model, usable, "cascading", seed)):
        if step in (0, len(usable) - 1):  # the copy changes in place: read the two steps
            cascading[step] = similarity(randomized)
    drawn = [layer for layer in usable if draws_weights(model, layer)]
    independent = {layer: similarity(copy) for layer, copy in randomized_models(
        model, drawn, "independent", seed)}  # fmt: skip
    highest = {m: max(independent, key=lambda layer: independent[layer][m]) for m in methods}
    return AttentionSanity(
        top_layer=usable[-1],
        targets=int(trained[methods[0]].shape[0]),
        after_top=cascading[0],
        after_all=cascading[len(usable) - 1],
        independent={m: independent[layer][m] for m, layer in highest.items()},
        independent_layer=highest,
        skipped=[layer for layer in layers if layer not in usable],
    )
