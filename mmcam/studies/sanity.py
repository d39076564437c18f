"""Model-parameter randomisation checks (Adebayo et al., NeurIPS 2018) driven through mmcam's
methods, for classifiers, captioners and VQA models alike.

The measures and the randomised copies live in `mmcam.evaluation` (they import torch only);
this module sits in `runs` because it must run the methods and the explainers' row builders,
which `evaluation` may not import.

Every explained score is a row: a caption's word or whole caption, a question's answer, an
image's class. The rows are built once from the trained model (its captions, its top answers)
and stay fixed on every randomised copy, as in the paper. Per model, one tapped pass gives all
CAM-family maps, one pass per ReLU rule gives guided backprop and deconvnet, guided Grad-CAM is
their product (no pass of its own), and occlusion is one batched no-grad sweep. The first
independent step (the top layer alone) is the first cascading step, so it is not run twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.explanation import upsample_maps
from mmcam.core.model_state import explaining
from mmcam.core.tap import Grid, Tap
from mmcam.core.targets import ClassLogit, Target
from mmcam.evaluation.map_similarity import MapSimilarity, map_similarity
from mmcam.evaluation.randomization import ORDERS, parameter_layers, randomized_models
from mmcam.explainers.captioning import WordReplicas, teacher_forced
from mmcam.explainers.vqa import move_to, repeat_rows
from mmcam.methods import registry
from mmcam.methods.pixel_space import rule_gradients

CHECKED_KINDS = ("gradient", "rule", "perturbation")  # the kinds the check runs on CNN models


def sanity_methods() -> list[str]:
    """The methods the check can run: every gradient, rule and perturbation method of the
    caption and VQA explainers, in the registry's order."""
    return [m.id for m in registry.methods(kind=CHECKED_KINDS) if registry.CNN <= m.explainers]


def checked_methods() -> list[str]:
    """The methods checked by default: those with a recorded verdict (`Method.sanity` True or
    False; the documentation's sanity tables)."""
    return [m for m in sanity_methods() if registry.get(m).sanity is not None]


@dataclass
class ExplainedRows:
    """The scores a sanity check explains, one per row: `forward_of(model)(images, *args)` gives
    the output that `target` scores; `layer` is the CAM layer; `kinds` names each row's kind
    ("word", "caption", "answer", "class") and `labels` its word / answer / class."""

    forward_of: Callable[[nn.Module], Callable[..., Any]]
    images: Tensor  # [R, C, H, W]
    forward_args: tuple
    target: Target
    layer: str
    kinds: list[str]
    labels: list[str] = field(default_factory=list)
    to_grid: Grid | None = None

    def run(self, model: nn.Module) -> Any:
        """One forward pass of `model` over the rows (what orders the layers)."""
        return self.forward_of(model)(self.images, *self.forward_args)


def classifier_rows(images: Tensor, classes: Sequence[int] | Tensor, layer: str) -> ExplainedRows:
    """One row per image explaining the logit of its class."""
    classes = torch.as_tensor(classes).flatten()
    return ExplainedRows(
        lambda model: model, images, (), ClassLogit(classes), layer,
        ["class"] * len(images), [str(c) for c in classes.tolist()],
    )  # fmt: skip


def caption_rows(
    model: nn.Module,
    images: Tensor,
    captions: Sequence[Sequence[int]],
    layer: str,
    to_grid: Grid | None = None,
) -> ExplainedRows:
    """A row per word of each caption and one per whole caption (its summed log-probability),
    teacher-forced with the given tokens on every model the rows are run on."""
    replicas = WordReplicas.of(model, captions, False, images.device)
    rows = replicas.score_rows()
    words = len(rows.word_rows)
    labels = [w for caption in captions for w in model.words(caption)]
    labels += [" ".join(model.words(caption)) for caption in captions]
    return ExplainedRows(
        teacher_forced, images[rows.images], (rows.tokens, rows.steps), rows.target, layer,
        ["word"] * words + ["caption"] * len(captions), labels, to_grid,
    )  # fmt: skip


def vqa_rows(
    model: nn.Module,
    images: Tensor,
    questions: Sequence[str],
    layer: str,
    top_k: int = 3,
    to_grid: Grid | None = None,
) -> ExplainedRows:
    """A row per (question, answer) for the trained model's top-k answers: the same answer
    indices are explained on every randomised copy."""
    tokens = move_to(model.tokenize(list(questions)), images.device)
    with explaining(model, images.device), torch.no_grad():
        best = model(images, tokens).topk(top_k, dim=1).indices  # [B, k]
    return ExplainedRows(
        lambda m: m, images.repeat_interleave(top_k, dim=0), (repeat_rows(tokens, top_k),),
        ClassLogit(best.flatten()), layer, ["answer"] * best.numel(),
        [model.answers[i] for i in best.flatten().tolist()], to_grid,
    )  # fmt: skip


def signed_maps(
    rows: ExplainedRows,
    model: nn.Module,
    methods: Sequence[str] | None = None,
    occlusion_grid: tuple[int, int] = (32, 16),
    batch_size: int = 256,
) -> dict[str, Tensor]:
    """Each method's signed map of every row at input size `[R, H, W]` (`methods`: default
    `checked_methods()`): a gradient method's map upsampled (bilinear), a rule's attribution
    summed over colour channels (times the upsampled map of its `times` method: guided Grad-CAM,
    Selvaraju et al. 2017), a perturbation's score drop (window, stride = `occlusion_grid` for
    the methods that take them, the method's defaults otherwise)."""
    methods = checked_methods() if methods is None else [registry.resolve(m) for m in methods]
    offered = sanity_methods()
    unknown = sorted(set(methods) - set(offered))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(offered)}")
    records = {m: registry.get(m) for m in methods}
    forward, images, args = rows.forward_of(model), rows.images, rows.forward_args
    size = (images.shape[-2], images.shape[-1])
    weighting = {r.times for r in records.values() if r.times}
    cams = {m for m, r in records.items() if r.kind == "gradient"} | weighting
    maps: dict[str, Tensor] = {}
    if cams:
        with explaining(model, images.device):
            with Tap(model, rows.layer, to_grid=rows.to_grid) as tap:
                scores = rows.target(forward(images, *args))
            activations, gradients = tap.gradients(scores)  # [R, K, h, w]
            tap.release()
        for method in cams:
            raw = registry.get(method).function(activations, gradients).clamp(min=0)  # [R, h, w]
            maps[method] = upsample_maps(raw.detach(), size)
    pixel: dict[str, Tensor] = {}  # rule -> [R, C, H, W]
    for method, record in records.items():
        if record.kind != "rule":
            continue
        if record.function not in pixel:
            pixel[record.function], _ = rule_gradients(
                record.function, forward, images, rows.target, model, args
            )
        weight = maps[record.times][:, None] if record.times else 1
        maps[method] = (pixel[record.function] * weight).sum(dim=1)
    for method, record in records.items():
        if record.kind == "perturbation":
            maps[method] = _perturbation_map(record, rows, model, occlusion_grid, batch_size)
    return {method: maps[method] for method in methods}


def _perturbation_map(
    record: registry.Method,
    rows: ExplainedRows,
    model: nn.Module,
    grid: tuple[int, int],
    batch_size: int,
) -> Tensor:
    """A perturbation method's map `[R, H, W]` of every row."""
    window, stride = grid
    given = {
        k: v for k, v in (("window", window), ("stride", stride)) if k in record.option_fields()
    }
    options = record.make_options(given)
    kwargs = {**(options.kwargs() if options is not None else {}), "batch_size": batch_size}
    explained = record.function(
        rows.forward_of(model), rows.images, rows.target, **kwargs, model=model,
        forward_args=rows.forward_args,
    )  # fmt: skip
    return explained.raw[:, 0]


@dataclass
class SanityResult:
    """Similarity of each randomised step's maps to the trained model's, by order, step (the
    layer randomised last, output first) and method; the trained maps `[R, H, W]` by method,
    and the randomised maps of the kept rows by order, step and method."""

    layers: list[str]  # input to output
    similarity: dict[str, dict[str, dict[str, MapSimilarity]]]  # order -> layer -> method
    trained_maps: dict[str, Tensor]
    randomized_maps: dict[str, dict[str, dict[str, Tensor]]] = field(default_factory=dict)
    kept_rows: list[int] = field(default_factory=list)

    def curve(self, order: str, method: str, measure: str) -> list[float | None]:
        """A measure's mean over the rows at each step of `order` (output layer first)."""
        return [self.similarity[order][layer][method].means()[measure] for layer in self.steps]

    @property
    def steps(self) -> list[str]:
        return list(reversed(self.layers))


def model_randomization(
    model: nn.Module,
    rows: ExplainedRows,
    *,
    methods: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    orders: Sequence[str] = ORDERS,
    seed: int = 0,
    occlusion_grid: tuple[int, int] = (32, 16),
    keep_rows: Sequence[int] = (),
    trained_maps: dict[str, Tensor] | None = None,
) -> SanityResult:
    """The model-parameter randomisation test of every method on `rows`: the trained model's
    maps against those of copies with `layers` (default: every module owning parameters, in
    forward order) re-initialised, cascading from the output and one at a time. `model` itself
    is never changed (each step works on a deep copy). The maps of `keep_rows` are kept for
    figures; `trained_maps` (from `signed_maps` of the same rows) saves computing them again."""
    methods = checked_methods() if methods is None else [registry.resolve(m) for m in methods]
    if layers is None:
        layers = parameter_layers(model, rows.run)
    layers = list(layers)
    if trained_maps is None:
        trained_maps = signed_maps(rows, model, methods, occlusion_grid)
    trained = {method: trained_maps[method] for method in methods}
    similarity: dict[str, dict[str, dict[str, MapSimilarity]]] = {}
    kept: dict[str, dict[str, dict[str, Tensor]]] = {}
    first: dict[str, Tensor] | None = None  # the top layer alone: first step of both orders
    for order in orders:
        similarity[order], kept[order] = {}, {}
        for step, (layer, randomized) in enumerate(randomized_models(model, layers, order, seed)):
            if step == 0 and first is not None:
                maps = first
            else:
                maps = signed_maps(rows, randomized, methods, occlusion_grid)
            if step == 0:
                first = maps
            similarity[order][layer] = {m: map_similarity(trained[m], maps[m]) for m in methods}
            kept[order][layer] = {m: maps[m][list(keep_rows)] for m in methods}
    return SanityResult(layers, similarity, trained, kept, list(keep_rows))
