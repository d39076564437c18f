"""The rows an explainer runs: the public rows layer every explainer builds on.

An explainer turns "every word of a caption" or "the top-k answers of a question" into batch
rows a single forward and backward pass can explain: teacher-forcing input (`caption_tokens`),
one replica per (image, word) (`WordReplicas`), a row per explained score for the non-linear
pixel-space rules (`ScoreRows`), the teacher-forced forward of a captioner (`teacher_forced`)
with its shape check, question inputs repeated once per answer (`repeat_rows`, `question_rows`)
and moved to the model's device (`move_to`). Methods never build rows: the explainer passes them
the forward and the rows. Imports core only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmcam.core.protocols import CaptionModel
from mmcam.core.targets import CaptionRows, token_logprobs

__all__ = [
    "ScoreRows",
    "WordReplicas",
    "caption_tokens",
    "check_logits_shape",
    "check_row_counts",
    "move_to",
    "question_rows",
    "repeat_features",
    "repeat_rows",
    "replica_rows",
    "row_count",
    "teacher_forced",
]


def caption_tokens(
    captions: Sequence[Sequence[int]], bos: int, eos: int, pad: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Teacher-forcing input `[B, L]` = BOS, words, EOS, padding; and the word counts `[B]`."""
    longest = max(len(caption) for caption in captions)
    tokens = torch.full((len(captions), longest + 2), pad, dtype=torch.long)
    for row, caption in enumerate(captions):
        tokens[row, : len(caption) + 2] = torch.tensor([bos, *caption, eos])
    counts = torch.tensor([len(caption) for caption in captions])
    return tokens.to(device), counts.to(device)


@dataclass
class ScoreRows:
    """One row per explained score, for the pixel-space methods (their backward rules are not
    linear, so scores cannot share rows): each word of each caption (padding skipped), then, when
    asked, each whole caption. Run `teacher_forced(model)(images[rows.images], rows.tokens,
    rows.steps)` and score it with `rows.target`."""

    images: Tensor  # [R]: the image each row explains
    tokens: Tensor  # [R, L]: its teacher-forcing input
    steps: Tensor  # [R]: the decoding steps it needs
    target: CaptionRows
    word_rows: Tensor  # [W]: where the first W rows (the words) sit among the B*T replicas


def teacher_forced(model: CaptionModel) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """images, tokens, steps -> the teacher-forced logits: the forward the pixel methods run
    (its shape checked against the protocol)."""

    def forward(images: Tensor, tokens: Tensor, steps: Tensor) -> Tensor:
        logits = model.decode_logits(model.encode(images), tokens, steps)
        return check_logits_shape(model, "decode_logits", logits, tokens)

    return forward


def check_logits_shape(model: object, name: str, logits: Tensor, tokens: Tensor) -> Tensor:
    """`logits` as `model.<name>` returned them for teacher-forcing input `tokens` `[B, L]`, or
    a clear error: `decode_logits` must give `[B, L, V]` (one row per input row, one step per
    input token), `decode_last_logits` `[B, V]` (or `[B, L, V]`)."""
    rows, steps = tokens.shape
    shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
    fits = isinstance(logits, Tensor) and logits.shape[0] == rows
    if fits and logits.dim() == 3:
        fits = logits.shape[1] == steps
    elif fits:
        fits = logits.dim() == 2 and name == "decode_last_logits"
    if not fits:
        expected = f"[{rows}, {steps}, V]" + (f" or [{rows}, V]" if name != "decode_logits" else "")
        raise ValueError(
            f"{type(model).__name__}.{name} returned {shape} for tokens [{rows}, {steps}]; "
            f"expected {expected}: one row per input row in the given order, and one step per "
            "input token (logits[b, t] scores tokens[b, t + 1]; the last step is never read). "
            "See the user guide (docs/guide/wrap.md), 'Your own captioner'"
        )
    return logits


@dataclass
class WordReplicas:
    """Teacher-forcing input with one replica per (image, word): row b*T + t scores word t of
    image b and decodes only steps 0..t (`lengths`)."""

    tokens: Tensor  # [B, L]
    counts: Tensor  # [B]: words explained per image
    scored: Tensor  # [B]: tokens the whole caption scores (its words and the end token)
    word_index: Tensor  # [B*T]: the word each replica scores
    replica_tokens: Tensor  # [B*T, L]

    @classmethod
    def of(
        cls,
        model: CaptionModel,
        captions: Sequence[Sequence[int]],
        include_end: bool,
        device: torch.device,
    ) -> WordReplicas:
        if any(len(caption) == 0 for caption in captions):
            raise ValueError("cannot explain an empty caption")
        tokens, counts = caption_tokens(
            captions, model.bos_index, model.eos_index, model.pad_index, device
        )
        scored = counts + 1
        counts = counts + int(include_end)
        steps = int(counts.max())
        word_index = torch.arange(steps, device=device).repeat(len(captions))
        return cls(tokens, counts, scored, word_index, tokens.repeat_interleave(steps, dim=0))

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    @property
    def steps(self) -> int:
        return self.replica_tokens.shape[0] // self.batch

    @property
    def lengths(self) -> Tensor:
        return self.word_index + 1

    @property
    def valid(self) -> Tensor:
        """`[B, T]`: replica (b, t) scores a word of caption b (not padding past its end)."""
        return self.word_index.view(self.batch, self.steps) < self.counts[:, None]

    def score_rows(self, whole_captions: bool = True) -> ScoreRows:
        """A row per word of each caption and, with `whole_captions`, one per caption."""
        word_rows = self.valid.flatten().nonzero().squeeze(1)
        captions = torch.arange(self.batch if whole_captions else 0, device=word_rows.device)
        positions = torch.cat([self.word_index[word_rows], torch.full_like(captions, -1)])
        images = torch.cat([word_rows // self.steps, captions])
        counts = self.counts[images]
        tokens = torch.cat([self.replica_tokens[word_rows], self.tokens[captions]])
        steps = torch.where(positions >= 0, positions + 1, counts)
        return ScoreRows(images, tokens, steps, CaptionRows(tokens, counts, positions), word_rows)

    def scores(self, logits: Tensor) -> Tensor:
        """Each replica's word log-probability `[B, T]` from teacher-forced logits `[B*T, L, V]`
        or from the scored step's logits alone `[B*T, V]`; 0 past a caption's end."""
        if logits.dim() == 3:
            logp = token_logprobs(logits, self.replica_tokens, self.lengths)  # [B*T, L-1]
            scores = logp.gather(1, self.word_index[:, None])
        else:
            scored = self.replica_tokens.gather(1, self.lengths[:, None])  # [B*T, 1]
            scores = torch.log_softmax(logits.float(), dim=-1).gather(1, scored)
        return torch.where(self.valid, scores.view(self.batch, self.steps), 0.0)


def replica_rows(features: Any, rows: Tensor, total: int) -> Any:
    """Rows `rows` of every `[total, ...]` tensor in `features` (`total` = B*T replicas),
    detached; other tensors as they are; None for None or a structure this does not know."""
    if isinstance(features, Tensor):
        if features.dim() and features.shape[0] == total:
            return features.detach()[rows]
        return features.detach()
    if isinstance(features, tuple | list):
        parts = [replica_rows(part, rows, total) for part in features]
        return None if any(part is None for part in parts) else type(features)(parts)
    if isinstance(features, dict):
        parts = {key: replica_rows(value, rows, total) for key, value in features.items()}
        return None if any(part is None for part in parts.values()) else parts
    return None


def repeat_rows(questions: Tensor | Mapping | Sequence, times: int) -> Tensor | dict | list:
    """Each question's input `times` times in a row, matching the tap's replica order.

    A mapping (a tokenizer's `BatchEncoding`: input ids, attention mask, ...) has each of its
    values repeated."""
    rows = torch.arange(row_count(questions)).repeat_interleave(times)
    return question_rows(questions, rows)


def question_rows(questions: Tensor | Mapping | Sequence, rows: Tensor) -> Tensor | dict | list:
    """The question input of rows `rows` `[R]` of the batch, in that order (rows may repeat):
    a tensor indexed along dim 0, a mapping's values alike, a list's entries."""
    if isinstance(questions, Tensor):
        return questions[rows.to(questions.device)]
    if isinstance(questions, Mapping):
        return {key: question_rows(value, rows) for key, value in questions.items()}
    if isinstance(questions, Sequence) and not isinstance(questions, str):
        return [questions[row] for row in rows.tolist()]
    raise TypeError(
        f"tokenize returned a {type(questions).__name__}; the explainer repeats each question's "
        "input once per mapped answer, so tokenize must return a tensor [B, ...], a mapping of "
        "such tensors (input ids, attention mask, ...) or a list with one entry per question"
    )


def row_count(questions: object) -> int:
    """The number of questions in a question input (a mapping: its first value's); 0 for what
    `question_rows` refuses."""
    if isinstance(questions, Mapping):
        return row_count(next(iter(questions.values()), None))
    if isinstance(questions, Tensor):
        return questions.shape[0]
    return len(questions) if isinstance(questions, Sequence) else 0


def check_row_counts(questions: Tensor | Mapping | Sequence, batch: int) -> None:
    """Every per-question input has one row per image, so replicas line up with their image."""
    values = questions.values() if isinstance(questions, Mapping) else [questions]
    for value in values:
        rows = value.shape[0] if isinstance(value, Tensor) and value.dim() else None
        if rows is None and isinstance(value, Sequence) and not isinstance(value, str):
            rows = len(value)
        if rows is not None and rows != batch:
            raise ValueError(
                f"tokenize gave {rows} rows for {batch} questions; each per-question input must "
                "have one row per question (batch first), so it is replicated with its image"
            )


def move_to(questions: Tensor | Mapping | Sequence, device: torch.device) -> object:
    """The question input on `device`: a tensor, or a mapping's tensor values, moved."""
    if isinstance(questions, Tensor):
        return questions.to(device)
    if isinstance(questions, Mapping):
        return {key: move_to(value, device) for key, value in questions.items()}
    return questions


def repeat_features(features: Tensor | tuple | list, times: int) -> Tensor | tuple | list:
    """Each image's features `times` times in a row (a tensor, or a tuple/list of tensors)."""
    if isinstance(features, Tensor):
        return features.repeat_interleave(times, dim=0)
    if isinstance(features, tuple | list):
        return type(features)(repeat_features(part, times) for part in features)
    raise TypeError(
        f"cannot repeat encoder features of type {type(features).__name__}: encode() must "
        "return a tensor or a tuple of tensors with the images along dim 0"
    )
