"""The figures of a dataset run (`mmcam.runs`): metrics from its per-item records, and
a short report a person reads.

Records are streamed (one pass, nothing but counters and caption text kept), so the metrics
of a large run cost little memory. `metrics.json` holds:

* captions: `bleu` (corpus BLEU-1..4 of the generated captions against every reference),
  `word_pointing` (every word naming a category: its map's peak in a ground-truth box of that
  category, and colour when the text gives one; words with no such object are misses, counted
  in `unmatched`);
* VQA: `vqa_accuracy` (official: min(#humans / 3, 1) over the ten leave-one-out subsets,
  normalised answers; a skipped or failed question scores 0) and `vqa_accuracy_answered`,
  per answer type, and `pointing_by_question_type`;
* both: `loc_accuracy` (the box around the largest component of map > threshold * max has
  IoU >= 0.5 with a ground-truth box; `sweep` over thresholds 0.10 .. 0.50), `maxboxacc`
  (best accuracy over thresholds 0.05 .. 0.95), `pointing` (the pointing game at the run's
  tolerance), `per_category`, all over the maps whose category has a ground-truth object in
  the image (null without an instances file); `deletion_auc` with `gradcam`, `random` and
  `center` (mean over items; lower is more faithful); `bad_data` (ids and reasons).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mmcam.data.vocab import tokenize
from mmcam.evaluation.box_metrics import DEFAULT_THRESHOLDS
from mmcam.evaluation.caption_metrics import caption_bleu
from mmcam.evaluation.vqa_accuracy import vqa_evaluate

__all__ = ["BoxScores", "caption_metrics", "report_text", "summary", "vqa_metrics"]


SWEEP = DEFAULT_THRESHOLDS[10:51:5]
"""The box thresholds reported for localisation accuracy: 0.10, 0.15, ..., 0.50, taken from
`DEFAULT_THRESHOLDS` (0.00, 0.01, ...), whose hits each scored map records."""


def _fraction(hits: float, count: int) -> float | None:
    return hits / count if count else None


class BoxScores:
    """Counts over scored maps: pointing, localisation at the box threshold, the sweep."""

    def __init__(self, box_threshold: float, tolerance: float, instances: bool) -> None:
        self.box_threshold, self.tolerance = box_threshold, tolerance
        self.instances = instances  # an instances file was given
        self.named = 0  # maps of a category word / question
        self.unmatched = 0  # ... whose category (and colour) has no object in the image
        self.count = 0
        self.pointing = 0
        self.located = 0
        self.by_kind = {"threshold": 0, "refined": 0}  # located by the map's own / refined box
        self.sweep = np.zeros(len(DEFAULT_THRESHOLDS), dtype=np.int64)
        self.per_category: dict[str, list[int]] = {}  # [count, pointing, located, unmatched]

    def add(self, scored: Mapping[str, Any], category: str) -> None:
        self.named += 1
        truth = scored.get("gt_boxes")
        if truth is None:
            return
        row = self.per_category.setdefault(category, [0, 0, 0, 0])
        if not truth:
            self.unmatched += 1
            row[3] += 1
            return
        located = scored["iou"] >= 0.5
        self.count += 1
        self.pointing += scored["pointing"]
        self.located += located
        for kind in self.by_kind:
            self.by_kind[kind] += scored.get(f"{kind}_iou", 0.0) >= 0.5
        self.sweep += np.asarray(scored["box_hits"], dtype=np.int64)
        row[0] += 1
        row[1] += scored["pointing"]
        row[2] += located

    def metrics(self) -> dict[str, Any]:
        if not self.instances:
            return {"loc_accuracy": None, "maxboxacc": None, "pointing": None}
        sweep = [_fraction(int(h), self.count) for h in self.sweep]
        best = int(np.argmax([s or 0 for s in sweep]))
        keys = [f"{t:.2f}" for t in DEFAULT_THRESHOLDS]
        shown = [t in SWEEP for t in DEFAULT_THRESHOLDS]
        return {
            "loc_accuracy": {
                "accuracy": _fraction(self.located, self.count),
                "threshold": self.box_threshold,
                "iou_threshold": 0.5,
                "count": self.count,
                **{f"{k}_accuracy": _fraction(n, self.count) for k, n in self.by_kind.items()},
                "sweep": {k: s for k, s, show in zip(keys, sweep, shown, strict=True) if show},
            },
            "maxboxacc": {
                "accuracy": sweep[best],
                "threshold": DEFAULT_THRESHOLDS[best],
                "count": self.count,
                "sweep": dict(zip(keys, sweep, strict=True)),
            },
            "pointing": {
                "accuracy": _fraction(self.pointing, self.count),
                "hits": self.pointing,
                "count": self.count,
                "tolerance": self.tolerance,
            },
            "per_category": {
                name: {
                    "count": count,
                    "pointing": _fraction(pointing, count),
                    "loc_accuracy": _fraction(located, count),
                    "unmatched": unmatched,
                }
                for name, (count, pointing, located, unmatched) in sorted(self.per_category.items())
            },
        }


class _Deletion:
    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, aucs: Mapping[str, float] | None) -> None:
        if aucs:
            self.count += 1
            for name, value in aucs.items():
                self.sums[name] = self.sums.get(name, 0.0) + value

    def metrics(self) -> dict[str, Any] | None:
        if not self.count:
            return None
        means = {name: total / self.count for name, total in self.sums.items()}
        return {**means, "count": self.count, "steps": self.steps}


class _BadData:
    def __init__(self) -> None:
        self.failed: dict[int, str] = {}
        self.converted: dict[str, list[int]] = {}

    def add(self, record: Mapping[str, Any]) -> bool:
        """Note a record's problems; False when it failed to load."""
        if "error" in record:
            self.failed[record["image_id"]] = record["error"]
            return False
        mode = record.get("converted_from")
        if mode:
            ids = self.converted.setdefault(mode, [])
            if record["image_id"] not in ids:
                ids.append(record["image_id"])
        return True

    def metrics(self) -> dict[str, Any]:
        return {
            "failed_images": {
                "count": len(self.failed),
                "ids": list(self.failed),
                "errors": {str(k): v for k, v in self.failed.items()},
            },
            "converted_to_rgb": {mode: {"count": len(ids), "ids": ids} for mode, ids in
                                 sorted(self.converted.items())},
        }  # fmt: skip


def caption_metrics(
    records: Iterable[Mapping[str, Any]],
    references: Mapping[int, list[str]],
    options: Any,
    instances: bool,
) -> dict[str, Any]:
    """The metrics of a captions run from its records, in one pass; `instances`: whether the
    run had ground-truth boxes."""
    images = 0
    bad = _BadData()
    boxes = BoxScores(options.box_threshold, options.pointing_tolerance, instances)
    deletion = _Deletion(options.deletion_steps)
    hypotheses, reference_sets, empty = [], [], []
    for record in records:
        images += 1
        if not bad.add(record):
            continue
        image_id = record["image_id"]
        if not record["words"]:
            empty.append(image_id)
        if references.get(image_id):
            hypotheses.append(tokenize(record["caption"]))
            reference_sets.append([tokenize(caption) for caption in references[image_id]])
        for mention in record["mentions"]:
            boxes.add(mention, mention["category"])
        deletion.add(record.get("deletion_auc"))
    bleu = caption_bleu(hypotheses, reference_sets) if hypotheses else None
    located = boxes.metrics()
    bad_data = bad.metrics()
    bad_data["empty_captions"] = {"count": len(empty), "ids": empty}
    return {
        "task": "captions",
        "images": images,
        "captioned": images - len(bad.failed),
        "bleu": bleu,
        "bleu4": bleu["bleu4"] if bleu else None,
        "category_words": boxes.named,
        "word_pointing": {
            "accuracy": _fraction(boxes.pointing, boxes.count + boxes.unmatched),
            "hits": boxes.pointing,
            "words": boxes.count + boxes.unmatched,
            "unmatched": boxes.unmatched,
            "tolerance": boxes.tolerance,
        }
        if boxes.instances
        else None,
        **located,
        "deletion_auc": deletion.metrics(),
        "method": options.method,
        "boxes": options.boxes,
        "smooth": options.smooth,
        "bad_data": bad_data,
    }


def vqa_metrics(
    records: Iterable[Mapping[str, Any]], options: Any, instances: bool
) -> dict[str, Any]:
    """The metrics of a VQA run from its records, in one pass; `instances`: whether the run
    had ground-truth boxes."""
    bad = _BadData()
    boxes = BoxScores(options.box_threshold, options.pointing_tolerance, instances)
    deletion = _Deletion(options.deletion_steps)
    images: set[int] = set()
    questions, skipped = 0, {}
    predictions: dict[int, str] = {}
    annotations: list[dict] = []
    answered_ids: list[int] = []
    by_type: dict[str, list[int]] = {}
    for record in records:
        questions += 1
        images.add(record["image_id"])
        question_id = record["question_id"]
        if "human_answers" in record:
            predictions[question_id] = record.get("answer", "")
            annotations.append(
                {
                    "question_id": question_id,
                    "answers": [{"answer": a} for a in record["human_answers"]],
                    "answer_type": record.get("answer_type") or "unknown",
                    "question_type": record.get("question_type") or "unknown",
                }
            )
        if not bad.add(record):
            continue
        if "skipped" in record:
            skipped[question_id] = record["skipped"]
            continue
        answered_ids.append(question_id)
        if record["categories"]:
            boxes.add(record, record["categories"][0])
            if record.get("gt_boxes"):
                row = by_type.setdefault(record.get("question_type") or "unknown", [0, 0])
                row[0] += 1
                row[1] += record["pointing"]
        deletion.add(record.get("deletion_auc"))
    accuracy = answered = per_answer_type = None
    if annotations:
        report = vqa_evaluate(predictions, annotations)
        accuracy, per_answer_type = report.overall, report.per_answer_type
        scored = [report.per_question[q] for q in answered_ids if q in report.per_question]
        answered = sum(scored) / len(scored) if scored else None
    bad_data = bad.metrics()
    bad_data["skipped_questions"] = {
        "count": len(skipped),
        "ids": list(skipped),
        "reasons": {str(k): v for k, v in skipped.items()},
    }
    bad_data["failed_images"]["questions"] = questions - len(answered_ids) - len(skipped)
    return {
        "task": "vqa",
        "images": len(images),
        "questions": questions,
        "answered": len(answered_ids),
        "vqa_accuracy": accuracy,
        "vqa_accuracy_answered": answered,
        "vqa_accuracy_per_answer_type": per_answer_type,
        "questions_naming_a_category": boxes.named,
        **boxes.metrics(),
        "pointing_by_question_type": {
            name: {"accuracy": hits / count, "hits": hits, "count": count}
            for name, (count, hits) in sorted(by_type.items())
        },
        "deletion_auc": deletion.metrics(),
        "method": options.method,
        "boxes": options.boxes,
        "smooth": options.smooth,
        "bad_data": bad_data,
    }


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures of a run's metrics, flat, for the one JSON line scripts end with."""

    def pick(*path: str) -> Any:
        value: Any = metrics
        for key in path:
            if not isinstance(value, Mapping) or value.get(key) is None:
                return None
            value = value[key]
        return value

    out: dict[str, Any] = {"task": metrics["task"], "images": metrics["images"]}
    if metrics["task"] == "captions":
        out["bleu4"] = metrics["bleu4"]
        out["word_pointing"] = pick("word_pointing", "accuracy")
    else:
        out["questions"] = metrics["questions"]
        out["vqa_accuracy"] = metrics["vqa_accuracy"]
    out["loc_accuracy"] = pick("loc_accuracy", "accuracy")
    out["loc_accuracy_threshold"] = pick("loc_accuracy", "threshold_accuracy")
    out["loc_accuracy_refined"] = pick("loc_accuracy", "refined_accuracy")
    out["maxboxacc"] = pick("maxboxacc", "accuracy")
    out["pointing"] = pick("pointing", "accuracy")
    for name in ("gradcam", "random", "center"):
        out[f"deletion_auc_{name}"] = pick("deletion_auc", name)
    out["failed_images"] = metrics["bad_data"]["failed_images"]["count"]
    if metrics["task"] == "vqa":
        out["skipped_questions"] = metrics["bad_data"]["skipped_questions"]["count"]
    return out


def number_text(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_text(metrics: Mapping[str, Any]) -> str:
    """A short report of a run's metrics for a person to read."""
    where = f"at layer {metrics['layer']}" if metrics["layer"] else "in pixel space"
    blur = f", blurred by a Gaussian of sigma {metrics['smooth']:g} px" if metrics["smooth"] else ""
    lines = [f"maps: {metrics['method']} {where}{blur}"]
    if metrics["task"] == "captions":
        lines.append(f"captions: {metrics['images']} images, {metrics['captioned']} captioned")
        bleu = metrics["bleu"]
        if bleu:
            lines.append(
                "BLEU-1..4 against all references: "
                + "  ".join(number_text(bleu[f"bleu{n}"]) for n in range(1, 5))
            )
        lines.append(f"words naming a category: {metrics['category_words']}")
        pointing = metrics["word_pointing"]
        if pointing:
            lines.append(
                f"word pointing (peak in that object's box, tolerance {pointing['tolerance']:g}"
                f" px; words with no such object are misses): {number_text(pointing['accuracy'])}"
                f" ({pointing['hits']} / {pointing['words']}, {pointing['unmatched']} with no "
                "such object)"
            )
    else:
        lines.append(
            f"VQA: {metrics['questions']} questions on {metrics['images']} images, "
            f"{metrics['answered']} answered"
        )
        if metrics["vqa_accuracy"] is not None:
            lines.append(
                f"VQA accuracy: {number_text(metrics['vqa_accuracy'])} (answered questions only: "
                f"{number_text(metrics['vqa_accuracy_answered'])})"
            )
            for name, value in sorted(metrics["vqa_accuracy_per_answer_type"].items()):
                lines.append(f"  {name:<12} {number_text(value)}")
        lines.append(f"questions naming a category: {metrics['questions_naming_a_category']}")
    lines += _box_lines(metrics)
    if metrics["task"] == "vqa" and metrics["pointing_by_question_type"]:
        lines.append("pointing by question type:")
        for name, row in metrics["pointing_by_question_type"].items():
            lines.append(f"  {name:<24} {number_text(row['accuracy'])}  ({row['count']})")
    deletion = metrics["deletion_auc"]
    if deletion:
        lines.append(
            f"deletion AUC ({metrics['method']} vs baselines, {deletion['steps']} steps, "
            f"{deletion['count']} items; lower is more faithful): "
            f"{metrics['method']} {number_text(deletion['gradcam'])}  random "
            f"{number_text(deletion['random'])}  centre {number_text(deletion['center'])}"
        )
    lines += _bad_data_lines(metrics["bad_data"])
    return "\n".join(lines) + "\n"


def _box_lines(metrics: Mapping[str, Any]) -> list[str]:
    located, best, pointing = metrics["loc_accuracy"], metrics["maxboxacc"], metrics["pointing"]
    if not located:
        return ["box metrics: no instances file given"]
    lines = [
        f"maps scored against ground truth: {located['count']}",
        f"pointing game (tolerance {pointing['tolerance']:g} px): "
        f"{number_text(pointing['accuracy'])} ({pointing['hits']} / {pointing['count']})",
        f"localisation accuracy (IoU >= 0.5) at box threshold {located['threshold']:g}: "
        f"{number_text(located.get('threshold_accuracy'))}; refined (map + image): "
        f"{number_text(located.get('refined_accuracy'))}",
        "  threshold " + " ".join(f"{k:>5}" for k in located["sweep"]),
        "  accuracy  " + " ".join(f"{number_text(v, 2):>5}" for v in located["sweep"].values()),
        f"MaxBoxAcc (thresholds 0.00-0.99, step 0.01): {number_text(best['accuracy'])} "
        f"at {best['threshold']:g}",
        f"  {'category':<16} {'maps':>5} {'pointing':>9} {'loc acc':>8} {'no object':>10}",
    ]
    for name, row in metrics["per_category"].items():
        lines.append(
            f"  {name:<16} {row['count']:>5} {number_text(row['pointing']):>9} "
            f"{number_text(row['loc_accuracy']):>8} {row['unmatched']:>10}"
        )
    return lines


def _bad_data_lines(bad: Mapping[str, Any]) -> list[str]:
    failed = bad["failed_images"]
    lines = [f"unreadable images (skipped): {failed['count']}"]
    lines += [f"  {image_id}: {error}" for image_id, error in failed["errors"].items()]
    for mode, row in bad["converted_to_rgb"].items():
        lines.append(f"converted to RGB from {mode}: {row['count']} {row['ids']}")
    if "empty_captions" in bad and bad["empty_captions"]["count"]:
        row = bad["empty_captions"]
        lines.append(f"empty captions: {row['count']} {row['ids']}")
    if "skipped_questions" in bad:
        row = bad["skipped_questions"]
        lines.append(f"questions skipped: {row['count']}")
        lines += [f"  {qid}: {reason}" for qid, reason in row["reasons"].items()]
    return lines
