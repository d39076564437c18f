"""The figures of a dataset run (`mmcam.runs`): metrics from its per-item records (the report
a person reads and the JSON line are in `mmcam.runs.readout`).

Records are streamed (one pass, nothing but counters and caption text kept), so the metrics
of a large run cost little memory. `metrics.json` holds:

* captions: the COCO caption metrics (pycocoevalcap, PTB tokens, every reference): `bleu`
  (BLEU-1..4), `bleu4`, `meteor`, `rouge_l`, `cider` (CIDEr-D), and `spice` null with
  `spice_unavailable` saying why; `nltk_bleu` (nltk's corpus BLEU-1..4 on mmcam's tokens);
  `word_pointing` (every word naming a category: its map's peak in a ground-truth box of that
  category, and colour when the text gives one, at the run's tolerance and at 0 px; words
  with no such object are misses, counted in `unmatched`);
* VQA: `vqa_accuracy` (official: min(#humans / 3, 1) over the ten leave-one-out subsets,
  normalised answers; a skipped or failed question scores 0) and `vqa_accuracy_answered`,
  per answer type, and `pointing_by_question_type` (scaled and 0 px);
* both: `loc_accuracy` (the box around the largest component of map > threshold * max has
  IoU >= 0.5 with a ground-truth box; `sweep` over thresholds 0.10 .. 0.50; the refined boxes
  flagged as guesses, `refined_flagged` and by flag `refined_flags`, and the refined boxes'
  accuracy without them, `refined_unflagged_accuracy` over `refined_unflagged_count` maps, and
  of them, `refined_flagged_accuracy`: see `mmcam.boxes.evidence`), `maxboxacc`
  (best accuracy over thresholds 0.00 .. 0.99), `pointing` (the pointing game at the run's
  tolerance: by default 15/224 of each image's shorter side) and `pointing_0px` (the peak
  inside the box), `per_category`, all over the maps whose category has a ground-truth object
  in the image (null without an instances file); `coco_ap`, `coco_ap50`, `coco_ap75` and
  `corloc` of `boxes_results.json` over the named image-category pairs, with their counts in
  `box_detection` (added by `mmcam.runs.run`, see `mmcam.evaluation.detection_metrics`);
  `deletion_auc` and `insertion_auc` (ties in random orders) and `road_morf` and `road_lerf`
  (ROAD's mean change of the score most / least relevant first), each with `map` (the run's
  method), `random` and `center` (means over items; lower is more faithful for deletion and
  ROAD most relevant first, higher for the others) and how they were measured;
  `map_support` (the maps' mean share of non-zero pixels); `bad_data` (ids and reasons).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mmcam.boxes.evidence import BOX_FLAGS
from mmcam.data.vocab import tokenize
from mmcam.evaluation.box_metrics import DEFAULT_THRESHOLDS
from mmcam.evaluation.caption_metrics import SPICE_UNAVAILABLE, caption_bleu, coco_caption_scores
from mmcam.evaluation.vqa_accuracy import vqa_evaluate
from mmcam.runs.faithfulness import FAITHFULNESS_KEYS

__all__ = ["BoxScores", "caption_metrics", "vqa_metrics"]


SWEEP = DEFAULT_THRESHOLDS[10:51:5]
"""The box thresholds reported for localisation accuracy: 0.10, 0.15, ..., 0.50, taken from
`DEFAULT_THRESHOLDS` (0.00, 0.01, ...), whose hits each scored map records."""


def _fraction(hits: float, count: int) -> float | None:
    return hits / count if count else None


class BoxScores:
    """Counts over scored maps: pointing, localisation at the box threshold, the sweep."""

    def __init__(self, box_threshold: float, tolerance: float | None, instances: bool) -> None:
        self.box_threshold, self.tolerance = box_threshold, tolerance  # None: scaled
        self.instances = instances  # an instances file was given
        self.named = 0  # maps of a category word / question
        self.unmatched = 0  # ... whose category (and colour) has no object in the image
        self.count = 0
        self.pointing = 0
        self.pointing_0px = 0
        self.tolerance_sum = 0.0  # pixels, over the maps scored
        self.located = 0
        self.by_kind = {"threshold": 0, "refined": 0}  # located by the map's own / refined box
        self.flags = dict.fromkeys(BOX_FLAGS, 0)  # refined boxes flagged as guesses, by flag
        self.flagged = [0, 0]  # [refined boxes flagged, of them located]
        self.sweep = np.zeros(len(DEFAULT_THRESHOLDS), dtype=np.int64)
        # [count, pointing, located, unmatched, pointing at 0 px]
        self.per_category: dict[str, list[int]] = {}

    def add(self, scored: Mapping[str, Any], category: str) -> None:
        self.named += 1
        truth = scored.get("gt_boxes")
        if truth is None:
            return
        row = self.per_category.setdefault(category, [0, 0, 0, 0, 0])
        if not truth:
            self.unmatched += 1
            row[3] += 1
            return
        located = scored["iou"] >= 0.5
        self.count += 1
        self.pointing += scored["pointing"]
        self.pointing_0px += scored["pointing_0px"]
        self.tolerance_sum += scored["pointing_tolerance"]
        self.located += located
        for kind in self.by_kind:
            self.by_kind[kind] += scored.get(f"{kind}_iou", 0.0) >= 0.5
        flags = scored.get("refined_box_flags") or []
        for flag in flags:
            self.flags[flag] = self.flags.get(flag, 0) + 1
        if flags:
            self.flagged[0] += 1
            self.flagged[1] += scored.get("refined_iou", 0.0) >= 0.5
        self.sweep += np.asarray(scored["box_hits"], dtype=np.int64)
        row[0] += 1
        row[1] += scored["pointing"]
        row[2] += located
        row[4] += scored["pointing_0px"]

    def flagged_metrics(self) -> dict[str, Any]:
        """The refined boxes flagged as guesses, and the refined boxes' accuracy without them."""
        flagged, hits = self.flagged
        unflagged = self.count - flagged
        return {
            "refined_flagged": flagged,
            "refined_flags": dict(self.flags),
            "refined_unflagged_accuracy": _fraction(self.by_kind["refined"] - hits, unflagged),
            "refined_unflagged_count": unflagged,
            "refined_flagged_accuracy": _fraction(hits, flagged),
        }

    def tolerance_metrics(self) -> dict[str, Any]:
        """How far outside a box a peak may lie: the rule, and its mean in pixels."""
        rule = "fixed" if self.tolerance is not None else "15/224 of the image's shorter side"
        mean = self.tolerance_sum / self.count if self.count else self.tolerance
        return {"tolerance": self.tolerance, "tolerance_rule": rule, "mean_tolerance_px": mean}

    def metrics(self) -> dict[str, Any]:
        if not self.instances:
            return {
                "loc_accuracy": None, "maxboxacc": None, "pointing": None, "pointing_0px": None
            }  # fmt: skip
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
                **self.flagged_metrics(),
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
                **self.tolerance_metrics(),
            },
            "pointing_0px": {
                "accuracy": _fraction(self.pointing_0px, self.count),
                "hits": self.pointing_0px,
                "count": self.count,
            },
            "per_category": {
                name: {
                    "count": count,
                    "pointing": _fraction(pointing, count),
                    "pointing_0px": _fraction(exact, count),
                    "loc_accuracy": _fraction(located, count),
                    "unmatched": unmatched,
                }
                for name, (count, pointing, located, unmatched, exact) in sorted(
                    self.per_category.items()
                )
            },
        }


class _Faithfulness:
    """Means over items of each faithfulness measure's map and baselines, and of the maps'
    support."""

    def __init__(self, options: Any) -> None:
        curve = {"steps": options.deletion_steps, "tie_orders": options.tie_orders}
        road = {"fractions": list(options.road_fractions)}
        self.settings = {"deletion_auc": curve, "insertion_auc": curve}
        self.settings |= {"road_morf": road, "road_lerf": road}
        self.sums: dict[str, dict[str, float]] = {key: {} for key in FAITHFULNESS_KEYS}
        self.counts = dict.fromkeys(FAITHFULNESS_KEYS, 0)
        self.support, self.supported = 0.0, 0

    def add(self, record: Mapping[str, Any]) -> None:
        if record.get("map_support") is not None:
            self.support += record["map_support"]
            self.supported += 1
        for key in FAITHFULNESS_KEYS:
            if record.get(key):
                self.counts[key] += 1
                for name, value in record[key].items():
                    self.sums[key][name] = self.sums[key].get(name, 0.0) + value

    def metrics(self) -> dict[str, Any]:
        found: dict[str, Any] = {"map_support": _fraction(self.support, self.supported)}
        for key in FAITHFULNESS_KEYS:
            count = self.counts[key]
            means = {name: total / count for name, total in self.sums[key].items()}
            found[key] = {**means, "count": count, **self.settings[key]} if count else None
        return found


class _BadData:
    def __init__(self) -> None:
        self.failed: dict[int, str] = {}
        self.converted: dict[str, list[int]] = {}
        self.resized: dict[int, dict[str, list[int]]] = {}  # annotated and file (height, width)

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
        if "size_mismatch" in record:
            self.resized[record["image_id"]] = record["size_mismatch"]
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
            "size_mismatch": {"count": len(self.resized), "ids": list(self.resized),
                              "sizes": {str(k): v for k, v in self.resized.items()}},
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
    faithfulness = _Faithfulness(options)
    captions: dict[int, str] = {}
    empty = []
    for record in records:
        images += 1
        if not bad.add(record):
            continue
        image_id = record["image_id"]
        if not record["words"]:
            empty.append(image_id)
        if references.get(image_id):
            captions[image_id] = record["caption"]
        for mention in record["mentions"]:
            boxes.add(mention, mention["category"])
        faithfulness.add(record)
    coco = coco_caption_scores(captions, references) if captions else None
    nltk_bleu = (
        caption_bleu(
            [tokenize(text) for text in captions.values()],
            [[tokenize(reference) for reference in references[i]] for i in captions],
        )
        if captions
        else None
    )
    located = boxes.metrics()
    bad_data = bad.metrics()
    bad_data["empty_captions"] = {"count": len(empty), "ids": empty}
    words = boxes.count + boxes.unmatched
    return {
        "task": "captions",
        "images": images,
        "captioned": images - len(bad.failed),
        "scored_captions": len(captions),
        "bleu": {k: coco[k] for k in ("bleu1", "bleu2", "bleu3", "bleu4")} if coco else None,
        "bleu4": coco["bleu4"] if coco else None,
        "meteor": coco["meteor"] if coco else None,
        "rouge_l": coco["rouge_l"] if coco else None,
        "cider": coco["cider"] if coco else None,
        "spice": None,
        "spice_unavailable": SPICE_UNAVAILABLE,
        "nltk_bleu": nltk_bleu,
        "category_words": boxes.named,
        "word_pointing": {
            "accuracy": _fraction(boxes.pointing, words),
            "hits": boxes.pointing,
            "accuracy_0px": _fraction(boxes.pointing_0px, words),
            "hits_0px": boxes.pointing_0px,
            "words": words,
            "unmatched": boxes.unmatched,
            **boxes.tolerance_metrics(),
        }
        if boxes.instances
        else None,
        **located,
        **faithfulness.metrics(),
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
    faithfulness = _Faithfulness(options)
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
                row = by_type.setdefault(record.get("question_type") or "unknown", [0, 0, 0])
                row[0] += 1
                row[1] += record["pointing"]
                row[2] += record["pointing_0px"]
        faithfulness.add(record)
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
            name: {
                "accuracy": hits / count,
                "hits": hits,
                "accuracy_0px": exact / count,
                "hits_0px": exact,
                "count": count,
            }
            for name, (count, hits, exact) in sorted(by_type.items())
        },  # fmt: skip
        **faithfulness.metrics(),
        "method": options.method,
        "boxes": options.boxes,
        "smooth": options.smooth,
        "bad_data": bad_data,
    }
