"""The sanity check's box measure: do a method's default boxes depend on the model?

A refined box takes its extent from the image (GrabCut grows whatever the map's seed touches),
so boxes can stay right when the map says little about the model. Here the default boxes of the
same fixed targets (the trained model's words, its top answer) are made from the trained model
and from its cascading-randomised copies (Adebayo et al. 2018: the top layer re-initialised,
then every layer), and their localisation accuracy (IoU >= 0.5) is compared.

Criterion: the boxes *depend on the model* at a step when their accuracy falls below the trained
model's by more than ``max(MIN_DROP, 2 * standard error of the difference)`` (0.1, or about a
one-sided 2.5% test over the maps scored, whichever is larger). Boxes that stay that accurate
with every layer re-initialised (a random model) are reported as not depending on the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from mmcam.boxes.settings import BoxSettings, map_boxes
from mmcam.data.vocab import tokenize
from mmcam.evaluation.box_metrics import localization_accuracy
from mmcam.evaluation.randomization import parameter_layers, randomized_models
from mmcam.evaluation.word_categories import WordCategories
from mmcam.runs.scoring import ground_truth_boxes
from mmcam.studies.sanity import ExplainedRows, signed_maps

__all__ = [
    "MIN_DROP", "BoxSanity", "BoxedRow", "box_randomization", "caption_boxed_rows",
    "vqa_boxed_rows",
]  # fmt: skip

MIN_DROP = 0.1  # the least fall in accuracy that counts as depending on the model


@dataclass(frozen=True)
class BoxedRow:
    """A row whose map is boxed: its index in the rows, the original image (8-bit RGB) and the
    ground-truth boxes of the object it names (COCO ``[x, y, w, h]``)."""

    row: int
    picture: object
    truth: list[list[float]]


@dataclass
class BoxSanity:
    """The default boxes' accuracy (IoU >= 0.5) and flagged count per step: "trained", then the
    cascading steps measured, each named by the layer randomised last (output first)."""

    method: str
    layer: str
    count: int  # maps scored
    accuracy: dict[str, float] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)

    def drop_needed(self, step: str) -> float:
        """The fall below the trained accuracy that counts as depending on the model at `step`."""
        trained, randomized = self.accuracy["trained"], self.accuracy[step]
        spread = trained * (1 - trained) + randomized * (1 - randomized)
        return max(MIN_DROP, 2 * math.sqrt(spread / self.count)) if self.count else MIN_DROP

    def depends(self, step: str) -> bool:
        """The boxes' accuracy at `step` fell by more than `drop_needed` (module docstring)."""
        return self.accuracy["trained"] - self.accuracy[step] > self.drop_needed(step)

    @property
    def steps(self) -> list[str]:
        return [step for step in self.accuracy if step != "trained"]

    @property
    def depends_on_model(self) -> bool:
        """Whether the boxes fall with every layer re-initialised (the last step)."""
        return self.depends(self.steps[-1])

    def metrics(self) -> dict:
        return {
            "method": self.method, "layer": self.layer, "maps": self.count,
            "accuracy": dict(self.accuracy), "flagged": dict(self.flagged),
            "depends": {step: self.depends(step) for step in self.steps},
            "drop_needed": {step: self.drop_needed(step) for step in self.steps},
            "depends_on_model": self.depends_on_model, "min_drop": MIN_DROP,
        }  # fmt: skip


def _accuracy(
    rows: ExplainedRows, model: nn.Module, boxed: Sequence[BoxedRow], method: str,
    settings: BoxSettings,
) -> tuple[float, int]:  # fmt: skip
    """The default boxes' localisation accuracy and how many of them are flagged."""
    maps = signed_maps(rows, model, [method])[method].detach().cpu()  # [R, H, W]
    found = [map_boxes(maps[b.row].clamp(min=0), b.picture, settings).box for b in boxed]
    ious = localization_accuracy([[box] if box else [] for box in found], [b.truth for b in boxed])
    flagged = sum(1 for box in found if box is not None and box.flags)
    return ious.accuracy, flagged


def box_randomization(
    model: nn.Module,
    rows: ExplainedRows,
    boxed: Sequence[BoxedRow],
    method: str,
    settings: BoxSettings,
    *,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> BoxSanity:
    """The default boxes (`settings`) of `method`'s maps of `boxed` rows, from the trained model
    and its cascading-randomised copies with the top layer and with every layer of `layers`
    (default: every module owning parameters, in forward order) re-initialised; `model` itself
    is never changed."""
    if not boxed:
        raise ValueError("no row names an object with a ground-truth box: nothing to score")
    layers = list(layers) if layers is not None else parameter_layers(model, rows.run)
    result = BoxSanity(method, rows.layer, len(boxed))
    result.accuracy["trained"], result.flagged["trained"] = _accuracy(
        rows, model, boxed, method, settings
    )
    last = len(layers) - 1
    for step, (layer, randomized) in enumerate(randomized_models(model, layers, "cascading", seed)):
        if step in (0, last):
            result.accuracy[layer], result.flagged[layer] = _accuracy(
                rows, randomized, boxed, method, settings
            )
    return result


def caption_boxed_rows(
    captions_words: Sequence[Sequence[str]],
    image_ids: Sequence[int],
    pictures: Sequence[object],
    categories: WordCategories,
    instances: dict,
) -> list[BoxedRow]:
    """The word rows (`caption_rows`, caption by caption) naming an object the image holds."""
    boxed, start = [], 0
    for words, image_id, picture in zip(captions_words, image_ids, pictures, strict=True):
        for mention in categories.find(list(words)):
            truth = ground_truth_boxes(instances, image_id, mention.category_id, mention.color)
            if truth:
                boxed.append(BoxedRow(start + mention.head, picture, truth))
        start += len(words)
    return boxed


def vqa_boxed_rows(
    questions: Sequence[str],
    image_ids: Sequence[int],
    pictures: Sequence[object],
    categories: WordCategories,
    instances: dict,
    top_k: int,
) -> list[BoxedRow]:
    """The top answer's row (`vqa_rows`) of each question naming an object the image holds."""
    boxed = []
    for index, (question, image_id, picture) in enumerate(
        zip(questions, image_ids, pictures, strict=True)
    ):
        truth: list[list[float]] = []
        for mention in categories.find(tokenize(question)):
            truth += ground_truth_boxes(instances, image_id, mention.category_id, mention.color)
        if truth:
            boxed.append(BoxedRow(index * top_k, picture, truth))
    return boxed
