"""VQA accuracy as the official evaluation computes it: normalised answers, min(#humans /
3, 1) averaged over the ten leave-one-out subsets of the human answers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["VQAReport", "normalize_answer", "vqa_accuracy", "vqa_evaluate"]


# ----------------------------------------------------------------------------- VQA

# The official VQA evaluation's normalisation tables (vqaEval.py, Antol et al. 2015 /
# Goyal et al. 2017), rewritten here.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
          ">", "<", "@", "`", ",", "?", "!"]  # fmt: skip
# The official pattern, kept verbatim: "(?!<=" is a look-ahead (not a look-behind), so in
# effect every period not followed by a digit is removed ("1.5" keeps its point).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    """Official rule: a punctuation mark touching a space, or any mark in a text holding a
    digit-comma-digit number ("1,000"), is deleted; otherwise it becomes a space."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        if p + " " in text or " " + p in text or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=32)  # the official code passes re.UNICODE (32)


def _process_digit_article(text: str) -> str:
    """Official rule: lower-case, number words -> digits, drop articles, fix contractions."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def _strip_space(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """The official VQA answer normalisation: whitespace, punctuation, then number words
    to digits, articles removed, contractions restored ("Two dogs." -> "2 dogs")."""
    return _process_digit_article(_process_punctuation(_strip_space(answer)))


def vqa_accuracy(
    answer: str, human_answers: Sequence[str], *, always_normalize: bool = False
) -> float:
    """VQA accuracy of one answer (Antol et al. 2015; the official VQA v2 ``vqaEval.py``).

    ``acc = (1/n) Σ_{i=1..n} min(#{j ≠ i : human_j = answer} / 3, 1)``: min(#humans / 3, 1)
    averaged over the n leave-one-out subsets of the n (= 10) human answers. So 2 of 10
    humans give 0.6, 3 give 0.9 (not 1.0: leaving one of the three out leaves two), 4+ give 1.

    As in the official code, answers are whitespace-stripped and, **only when the humans
    disagree**, both the answer and the human answers are normalised
    (:func:`normalize_answer`); when all humans gave the same string it must match exactly.
    ``always_normalize=True`` normalises in every case (not the official number).
    """
    if isinstance(human_answers, str) or len(human_answers) < 2:
        raise ValueError("human_answers must be a list of at least two answers (VQA v2 has 10)")
    res = _strip_space(answer)
    gts = [_strip_space(a) for a in human_answers]
    if always_normalize or len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        res = normalize_answer(res)
    n = len(gts)
    matches = sum(g == res for g in gts)
    # Leaving out human i: matches - [human_i == answer] of the other n - 1 agree.
    total = sum(min(1.0, (matches - (g == res)) / 3) for g in gts)
    return total / n


@dataclass
class VQAReport:
    """VQA accuracy overall, per answer type and per question type (fractions in [0, 1])."""

    overall: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    per_question: dict[int, float]


def vqa_evaluate(
    predictions: Mapping[int, str] | Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
) -> VQAReport:
    """Evaluate a VQA results file against VQA v2 annotations, as the official tool does.

    ``predictions``: ``{question_id: answer}`` or the results list
    ``[{"question_id", "answer"}]``; ``annotations``: the ``"annotations"`` list of a VQA v2
    file. Every annotated question needs exactly one prediction and vice versa. The official
    tool reports these ×100 rounded to 2 decimals; here they are unrounded fractions.
    """
    if isinstance(predictions, Mapping):
        preds = {int(k): v for k, v in predictions.items()}
    else:
        preds = {}
        for item in predictions:
            qid = int(item["question_id"])
            if qid in preds:
                raise ValueError(f"question {qid} is answered twice in the results")
            preds[qid] = item["answer"]
    ann_ids = [int(a["question_id"]) for a in annotations]
    missing = set(ann_ids) - set(preds)
    extra = set(preds) - set(ann_ids)
    if missing or extra:
        raise ValueError(
            f"results and annotations differ: {len(missing)} questions unanswered "
            f"(e.g. {sorted(missing)[:3]}), {len(extra)} answers to unknown questions "
            f"(e.g. {sorted(extra)[:3]}); evaluate on the annotations of the questions answered"
        )
    per_question: dict[int, float] = {}
    by_answer: dict[str, list[float]] = {}
    by_question: dict[str, list[float]] = {}
    for ann in annotations:
        qid = int(ann["question_id"])
        acc = vqa_accuracy(preds[qid], [a["answer"] for a in ann["answers"]])
        per_question[qid] = acc
        by_answer.setdefault(ann.get("answer_type", "unknown"), []).append(acc)
        by_question.setdefault(ann.get("question_type", "unknown"), []).append(acc)
    if not per_question:
        raise ValueError("no questions to evaluate")
    overall = sum(per_question.values()) / len(per_question)
    return VQAReport(
        overall,
        {k: sum(v) / len(v) for k, v in by_answer.items()},
        {k: sum(v) / len(v) for k, v in by_question.items()},
        per_question,
    )
