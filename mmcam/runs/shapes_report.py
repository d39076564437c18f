"""The shapes evaluation: the four headline figures of the bundled models on the shapes
data, from a captions run and a VQA run, checked against their targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmcam.runs.report import (
    number_text,
)

# ----------------------------------------------------------------------------- shapes targets

SHAPES_TARGETS = {"vqa_accuracy": 0.9, "bleu4": 0.6, "word_pointing": 0.85, "answer_pointing": 0.85}
"""Issue #3's targets for the bundled models on the shapes val split."""

COLOR_QUESTION = "what color is the"
"""The shapes question type whose answer map must point at the queried shape."""


def shapes_evaluation(captions: Mapping[str, Any], vqa: Mapping[str, Any]) -> dict[str, Any]:
    """The four figures of the shapes evaluation from a captions run's and a VQA run's metrics
    (both with the shapes instances): VQA accuracy, BLEU-4, word pointing (unmatched words are
    misses) and answer pointing ("what color is the <shape>?" questions), with their counts."""
    word = captions.get("word_pointing") or {}
    answer = (vqa.get("pointing_by_question_type") or {}).get(COLOR_QUESTION, {})
    return {
        "vqa_accuracy": vqa["vqa_accuracy"],
        "bleu4": captions["bleu4"],
        "word_pointing": word.get("accuracy"),
        "answer_pointing": answer.get("accuracy"),
        "counts": {
            "images": captions["images"],
            "questions": vqa["questions"],
            "shape_words": word.get("words", 0),
            "shape_words_with_no_such_object": word.get("unmatched", 0),
            "colour_questions": answer.get("count", 0),
        },
    }


def shapes_table(figures: Mapping[str, Any], tolerance: float) -> str:
    """The shapes evaluation as a table with its targets."""
    counts = figures["counts"]
    notes = {
        "vqa_accuracy": f"{counts['questions']} questions",
        "bleu4": f"{counts['images']} images, corpus BLEU-4 vs all references",
        "word_pointing": f"{counts['shape_words']} shape words, "
        f"{counts['shape_words_with_no_such_object']} with no such object (misses), "
        f"tolerance {tolerance:g} px",
        "answer_pointing": f"{counts['colour_questions']} 'what color is the <shape>?' questions",
    }
    lines = [f"{'metric':<16} {'value':>6} {'target':>7}  {'':<4} note"]
    for name, target in SHAPES_TARGETS.items():
        value = figures[name]
        verdict = "ok" if value is not None and value >= target else "MISS"
        lines.append(f"{name:<16} {number_text(value):>6} {'>= ' + str(target):>7}  {verdict:<4} "
                     f"{notes[name]}")  # fmt: skip
    return "\n".join(lines) + "\n"
