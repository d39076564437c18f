"""The shapes evaluation: the headline figures of the bundled models on the shapes data, from
a captions run and a VQA run, the four with targets checked against them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmcam.runs.readout import number_text

# ----------------------------------------------------------------------------- shapes targets

SHAPES_TARGETS = {
    "vqa_accuracy": 0.9, "bleu4": 0.6, "word_pointing_0px": 0.85, "answer_pointing_0px": 0.85
}  # fmt: skip
"""Issue #3's targets for the bundled models on the shapes data (pointing at 0 px)."""

COLOR_QUESTION = "what color is the"
"""The shapes question type whose answer map must point at the queried shape."""

BOX_FIGURES = ("coco_ap", "coco_ap50", "corloc")
"""The box figures of each run the evaluation reports: COCO AP, AP50 and CorLoc."""


def shapes_evaluation(captions: Mapping[str, Any], vqa: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of the shapes evaluation from a captions run's and a VQA run's metrics
    (both with the shapes instances): VQA accuracy; BLEU-4, METEOR, ROUGE-L and CIDEr-D;
    word pointing (unmatched words are misses) and answer pointing ("what color is the
    <shape>?" questions), each at 0 px and at the run's tolerance; COCO AP, AP50 and CorLoc
    of each run's boxes; with their counts."""
    word = captions.get("word_pointing") or {}
    answer = (vqa.get("pointing_by_question_type") or {}).get(COLOR_QUESTION, {})
    return {
        "vqa_accuracy": vqa["vqa_accuracy"],
        "bleu4": captions["bleu4"],
        "meteor": captions["meteor"],
        "rouge_l": captions["rouge_l"],
        "cider": captions["cider"],
        "word_pointing_0px": word.get("accuracy_0px"),
        "word_pointing": word.get("accuracy"),
        "answer_pointing_0px": answer.get("accuracy_0px"),
        "answer_pointing": answer.get("accuracy"),
        "captions": {name: captions.get(name) for name in BOX_FIGURES},
        "vqa": {name: vqa.get(name) for name in BOX_FIGURES},
        "tolerance": {k: word.get(k) for k in ("tolerance", "tolerance_rule", "mean_tolerance_px")},
        "counts": {
            "images": captions["images"],
            "questions": vqa["questions"],
            "shape_words": word.get("words", 0),
            "shape_words_with_no_such_object": word.get("unmatched", 0),
            "colour_questions": answer.get("count", 0),
        },
    }


def shapes_table(figures: Mapping[str, Any]) -> str:
    """The shapes evaluation as a table with its targets."""
    counts, tolerance = figures["counts"], figures["tolerance"]
    if tolerance["tolerance"] is not None:
        scaled = f"tolerance {tolerance['tolerance']:g} px"
    else:
        mean = number_text(tolerance["mean_tolerance_px"], 1)
        scaled = f"tolerance {tolerance['tolerance_rule']} ({mean} px on average)"
    words = (
        f"{counts['shape_words']} shape words, {counts['shape_words_with_no_such_object']} with "
        "no such object (misses)"
    )
    answers = f"{counts['colour_questions']} 'what color is the <shape>?' questions"
    captions = f"{counts['images']} images, pycocoevalcap vs all references"
    notes = {
        "vqa_accuracy": f"{counts['questions']} questions",
        "bleu4": captions,
        "meteor": captions,
        "rouge_l": captions,
        "cider": f"CIDEr-D, {captions}",
        "word_pointing_0px": f"{words}, peak inside the box",
        "word_pointing": f"{words}, {scaled}",
        "answer_pointing_0px": f"{answers}, peak inside the box",
        "answer_pointing": f"{answers}, {scaled}",
    }
    lines = [f"{'metric':<20} {'value':>6} {'target':>7}  {'':<4} note"]
    for name, note in notes.items():
        value, target = figures[name], SHAPES_TARGETS.get(name)
        goal = verdict = ""
        if target is not None:
            met = value is not None and value >= target
            goal, verdict = f">= {target}", "ok" if met else "MISS"
        lines.append(f"{name:<20} {number_text(value):>6} {goal:>7}  {verdict:<4} {note}")
    for task in ("captions", "vqa"):
        row = figures[task]
        lines.append(
            f"{task} boxes: COCO AP {number_text(row['coco_ap'])}, AP50 "
            f"{number_text(row['coco_ap50'])}, CorLoc {number_text(row['corloc'])}"
        )
    return "\n".join(lines) + "\n"
