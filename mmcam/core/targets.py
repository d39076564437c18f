"""Targets: the scalar explained for each batch row, computed from the model's output.

A target is any callable from the model's output to a tensor with one score per row (`[B]`,
or `[B, R]` when the tapped layer is replicated R times). New targets need no engine change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Target = Callable[[Any], Tensor]


class ClassLogit:
    """The logit of one class per image: a classifier's class, a VQA model's answer.

    `classes` is one index for every image, or a sequence with exactly one index per image.
    Called on logits `[B, C]`, it returns each image's class logit `[B]`.

    Args:
        classes: one class index for all images, or one per image.

    Raises:
        ValueError: (when called) logits that are not `[B, C]`, or not one class per image.
    """

    def __init__(self, classes: int | Sequence[int] | Tensor) -> None:
        self.classes = classes

    def indices(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        """The class index of every row, `[batch_size]`; a list of the wrong length raises.

        Args:
            batch_size: the number of rows.
            device: where the indices go.

        Returns:
            The indices `[batch_size]`, long.

        Raises:
            ValueError: a sequence of classes that is not one per row.
        """
        if isinstance(self.classes, int):
            return torch.full((batch_size,), self.classes, dtype=torch.long, device=device)
        indices = torch.as_tensor(self.classes, dtype=torch.long, device=device).flatten()
        if indices.numel() != batch_size:
            raise ValueError(
                f"{indices.numel()} target classes for a batch of {batch_size}: give one class "
                "per image, or a single int for all"
            )
        return indices

    def __call__(self, logits: Tensor) -> Tensor:
        if logits.dim() != 2:
            raise ValueError(f"ClassLogit expects logits [B, C], got shape {tuple(logits.shape)}")
        indices = self.indices(logits.shape[0], logits.device)
        return logits.gather(1, indices[:, None]).squeeze(1)


def token_logprobs(logits: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
    """log p(tokens[:, t+1] | tokens[:, :t+1], image) for t < lengths, else 0: `[N, L-1]`.

    `logits` `[N, L', V]` are teacher-forced (`logits[:, t]` scores `tokens[:, t+1]`).
    """
    steps = tokens.shape[1] - 1
    logp = torch.log_softmax(logits[:, :steps].float(), dim=-1)
    picked = logp.gather(2, tokens[:, 1:, None]).squeeze(2)  # [N, L-1]
    valid = torch.arange(steps, device=tokens.device)[None, :] < lengths[:, None]
    return torch.where(valid, picked, torch.zeros_like(picked))


class CaptionLogProb:
    """A caption's log-probability: sum_t log p(w_t | w_<t, image), EOS included.

    Called on teacher-forced logits `[N, L', V]`, it returns one score per caption `[N]`.

    Args:
        tokens: the teacher-forced token ids `[N, L]`, BOS first (`logits[:, t]` scores
            `tokens[:, t + 1]`).
        lengths: how many tokens after BOS each row scores `[N]` (its words, plus EOS when
            scored).
    """

    def __init__(self, tokens: Tensor, lengths: Tensor) -> None:
        self.tokens, self.lengths = tokens, lengths

    def __call__(self, logits: Tensor) -> Tensor:
        return token_logprobs(logits, self.tokens, self.lengths).sum(dim=1)


class WordLogProb:
    """One word's log-probability log p(w_t | w_<t, image); `position` 0 is the first word.

    Called on teacher-forced logits `[N, L', V]`, it returns one score per caption `[N]`.

    Args:
        tokens: the teacher-forced token ids `[N, L]`, BOS first (`logits[:, t]` scores
            `tokens[:, t + 1]`).
        lengths: how many tokens after BOS each row scores `[N]` (its words, plus EOS when
            scored).
        position: the word's position, one for all captions or one per caption.

    Raises:
        ValueError: (when called) not one position per caption.
    """

    def __init__(self, tokens: Tensor, lengths: Tensor, position: int | Sequence[int]) -> None:
        self.tokens, self.lengths = tokens, lengths
        self.position = position

    def __call__(self, logits: Tensor) -> Tensor:
        logp = token_logprobs(logits, self.tokens, self.lengths)  # [N, L-1]
        positions = ClassLogit(self.position).indices(logp.shape[0], logp.device)
        return logp.gather(1, positions[:, None]).squeeze(1)


class CaptionRows:
    """Row r scores word `positions[r]` of its caption, log p(w_t | w_<t, image), or the whole
    caption, sum_t log p(w_t | w_<t, image), where `positions[r]` is -1. `lengths` are the tokens
    each caption scores: its words, plus the end token when it is explained."""

    def __init__(self, tokens: Tensor, lengths: Tensor, positions: Tensor) -> None:
        self.tokens, self.lengths, self.positions = tokens, lengths, positions

    def __call__(self, logits: Tensor) -> Tensor:
        logp = token_logprobs(logits, self.tokens, self.lengths)  # [N, L-1]
        word = logp.gather(1, self.positions.clamp(min=0)[:, None]).squeeze(1)
        return torch.where(self.positions >= 0, word, logp.sum(dim=1))

    def select(self, rows: Tensor) -> CaptionRows:
        """The target of a batch whose row r copies row `rows[r]` (for occlusion)."""
        return CaptionRows(self.tokens[rows], self.lengths[rows], self.positions[rows])


class ClassLogits:
    """Several classes' logits per image, `[B, k]`: a VQA model's top-k answers at once.

    `classes` `[B, k]` holds each image's k class indices (the same k for every image).
    Called on logits `[B, C]`, it returns `[B, k]`.

    Args:
        classes: the class indices `[B, k]`.

    Raises:
        ValueError: classes that are not `[B, k]`, or (when called) logits that are not
            `[B, C]` for the same B.
    """

    def __init__(self, classes: Tensor) -> None:
        if classes.dim() != 2:
            raise ValueError(f"ClassLogits takes classes [B, k], got shape {tuple(classes.shape)}")
        self.classes = classes

    def __call__(self, logits: Tensor) -> Tensor:
        if logits.dim() != 2 or logits.shape[0] != self.classes.shape[0]:
            raise ValueError(
                f"ClassLogits holds classes for {self.classes.shape[0]} images and expects "
                f"logits [{self.classes.shape[0]}, C], got shape {tuple(logits.shape)}"
            )
        return logits.gather(1, self.classes.to(logits.device))

    def select(self, rows: Tensor) -> ClassLogits:
        """The target of a batch whose row r copies row `rows[r]` (for perturbation methods)."""
        return ClassLogits(self.classes[rows])


class CaptionWords:
    """Every word's log-probability and the whole caption's, `[B, words + 1]`: column t is
    log p(w_t | w_<t, image) (0 past the caption's `lengths`), the last column their sum.

    One teacher-forced forward gives all of them, so a perturbation method reads every word's
    score, and the caption's, from the same perturbed copies.

    Args:
        tokens: the teacher-forced token ids `[N, L]`, BOS first (`logits[:, t]` scores
            `tokens[:, t + 1]`).
        lengths: how many tokens after BOS each row scores `[N]` (its words, plus EOS when
            scored).
        words: T, the number of word columns.
    """

    def __init__(self, tokens: Tensor, lengths: Tensor, words: int) -> None:
        self.tokens, self.lengths, self.words = tokens, lengths, words

    def __call__(self, logits: Tensor) -> Tensor:
        logp = token_logprobs(logits, self.tokens, self.lengths)[:, : self.words]  # [B, T]
        return torch.cat([logp, logp.sum(dim=1, keepdim=True)], dim=1)

    def select(self, rows: Tensor) -> CaptionWords:
        """The target of a batch whose row r copies row `rows[r]` (for perturbation methods)."""
        return CaptionWords(self.tokens[rows], self.lengths[rows], self.words)
