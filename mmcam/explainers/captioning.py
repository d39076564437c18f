"""Explain a captioner: a map for every word of a caption, and one for the whole caption.

Generation is not differentiable, so the caption is decoded first and then explained with
teacher forcing. All words are explained in one forward and one backward pass: the tapped
layer's output is replicated once per word, replica t scores word t, and replica t only
decodes the t + 1 steps word t depends on. Gradients are linear, so the whole caption's
gradient is the sum of the words' gradients and its map comes for free.

Guided backpropagation and deconvnet (`RULE_METHODS`) explain in pixel space through a
non-linear backward rule, so there each word, and the whole caption, is a row of its own from
the input up: one forward and one backward pass over (words + 1) copies of each image.

Occlusion and RISE (`PERTURBATION_METHODS`) need no gradient: one teacher-forced forward of a
perturbed copy gives every word's log-probability, so all words and the whole caption are read
from one sweep of perturbed copies (`CaptionWords`), not one sweep per word.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmcam.core.explanation import Explanation
from mmcam.core.model_state import explaining
from mmcam.core.protocols import EXPLAINED_MEMBERS, CaptionModel
from mmcam.core.tap import Grid, Layers, Taps, layers
from mmcam.core.targets import CaptionRows, CaptionWords, token_logprobs
from mmcam.explainers.protocol_check import ProtocolRules, check_rows
from mmcam.methods.cam import fused_maps
from mmcam.methods.pixel_space import (
    PIXEL_SPACE_METHODS,
    RULE_METHODS,
    check_method,
    perturbation_maps,
    pixel_explanation,
    rule_gradients,
)


@dataclass
class CaptionExplanation:
    """Per-word maps (`words`: scores `[B, T]`, rows past a caption's end are empty) and the
    whole caption's map (`caption`: scores `[B]`, the summed word log-probabilities)."""

    captions: list[list[int]]  # token ids, without BOS/EOS
    texts: list[str]
    words: Explanation
    caption: Explanation

    def word_labels(self, index: int) -> list[str]:
        """The words of image `index`, one per map in `words.maps[index]`."""
        return self.words.labels[index]


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
            "See the README, 'Your own captioner'"
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


CAPTIONER_RULES = ProtocolRules(
    protocol="captioner",
    scores="words",
    causes="decode_logits returns rows in another order than given (a decoder that sorts its "
    "batch by caption length must undo the sort); rows depend on each other (BatchNorm in "
    "training mode, attention across the batch); steps past `lengths` are read (logits[b, t] "
    "may depend only on tokens[b, :t + 1])",
    section="Your own captioner",
)


def check_word_scores(
    model: CaptionModel,
    images: Tensor,
    replicas: WordReplicas,
    scores: Tensor,
    features: Any = None,
) -> None:
    """Raise unless the per-word log-probabilities `scores` `[B, T]` the explanation used equal
    those of one plain teacher-forced call of the whole captions, without gradients, of the
    images in another order and company (`check_rows`).

    `features` are those the explained pass decoded (`[B*T, ...]`, T replicas per image): the
    plain call then decodes their first replica of each image instead of encoding again, so the
    check costs one decode of B + 1 rows. Without them (or in a structure other than tensors,
    tuples, lists and dicts of tensors) the images are encoded again."""
    steps = replicas.steps

    def plain(rows: Tensor) -> Tensor:
        encoded = _replica_rows(features, rows * steps, replicas.batch * steps)
        if encoded is None:
            encoded = model.encode(images[rows])
        tokens, scored = replicas.tokens[rows], replicas.scored[rows]
        logits = model.decode_logits(encoded, tokens, scored)
        check_logits_shape(model, "decode_logits", logits, tokens)
        return token_logprobs(logits, tokens, scored)[:, :steps].to(logits.dtype)  # [R, T]

    check_rows(
        model, scores, plain, replicas.valid, CAPTIONER_RULES,
        lambda image, word: f"the log-probability of word {word} of image {image}",
    )  # fmt: skip


def _replica_rows(features: Any, rows: Tensor, total: int) -> Any:
    """Rows `rows` of every `[total, ...]` tensor in `features` (`total` = B*T replicas),
    detached; other tensors as they are; None for None or a structure this does not know."""
    if isinstance(features, Tensor):
        if features.dim() and features.shape[0] == total:
            return features.detach()[rows]
        return features.detach()
    if isinstance(features, tuple | list):
        parts = [_replica_rows(part, rows, total) for part in features]
        return None if any(part is None for part in parts) else type(features)(parts)
    if isinstance(features, dict):
        parts = {key: _replica_rows(value, rows, total) for key, value in features.items()}
        return None if any(part is None for part in parts.values()) else parts
    return None


class CaptionExplainer:
    """Grad-CAM family maps (and guided backprop / deconvnet maps in pixel space) for any model
    that satisfies `mmcam.core.protocols.CaptionModel`.

    `layer` is the explained layer inside `model.encode` (a dotted name or a module), "input"
    for the images `encode` is given (a precomputed feature grid), or a list of layers from the
    input up, whose maps are fused as LayerCAM's (`fused_maps`); `to_grid` reshapes its output
    to `[N, K, h, w]` when it is not already a feature grid.
    `include_end=True` also explains the end-of-caption token (labelled "<end>").

    With `check=True` (the default) every explanation, by every method, also verifies that the
    model keeps the protocol its batches rely on: the per-word log-probabilities it explained
    (of the replica rows; for occlusion and RISE, of the unperturbed images) must equal those of
    one plain teacher-forced call of the whole captions with the images in another order and
    company (`check_rows`: one extra decode without gradients of B + 1 rows, from the explained
    pass's features where it has them); a model that breaks it (rows returned sorted by length,
    rows that depend on each other, steps past `lengths` read) raises instead of giving wrong
    maps. `check=False` skips that call.
    """

    def __init__(
        self,
        model: CaptionModel,
        layer: Layers,
        *,
        to_grid: Grid | None = None,
        include_end: bool = False,
        check: bool = True,
    ) -> None:
        missing = [name for name in EXPLAINED_MEMBERS if not hasattr(model, name)]
        if missing:
            raise TypeError(
                f"{type(model).__name__} lacks part of the CaptionModel protocol "
                f"({', '.join(missing)}); see mmcam.core.protocols"
            )
        self.model = model
        self.layer = layer
        self.to_grid = to_grid
        self.include_end = include_end
        self.check = check

    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """The model's captions (token ids), decoded in eval mode without gradients."""
        if not hasattr(self.model, "generate"):
            raise TypeError(
                f"{type(self.model).__name__} has no generate(images, max_length, beam_size): "
                "give the captions to explain (token ids), or add generate"
            )
        with explaining(self.model, images.device), torch.no_grad():
            return self.model.generate(images, max_length=max_length, beam_size=beam_size)

    def explain(
        self,
        images: Tensor,
        captions: Sequence[Sequence[int]] | None = None,
        *,
        method: str = "gradcam",
        max_length: int = 20,
        beam_size: int = 1,
        size: tuple[int, int] | None = None,
        perturbation: Mapping[str, Any] | None = None,
    ) -> CaptionExplanation:
        """Maps of every word of each image's caption (generated when `captions` is None) by
        `method`: a CAM method of `mmcam.methods.GRADIENT_METHODS` at the explained layer,
        "guided_backprop" / "deconvnet" at the input, or "occlusion" / "rise" (all words from
        one sweep; `perturbation` holds their options, e.g. `{"window": 16, "stride": 8}` or
        `{"n_masks": 1000, "cell": 16}`; raw maps are then `[B, T, H, W]`). CAM maps are
        upsampled to `size` (height, width; default: the input's), e.g. the image size when the
        input is a precomputed feature grid."""
        check_method(method, perturbation)
        if captions is None:
            captions = self.generate(images, max_length, beam_size)
        if len(captions) != images.shape[0]:
            raise ValueError(f"{len(captions)} captions for {images.shape[0]} images")
        model = self.model
        replicas = WordReplicas.of(model, captions, self.include_end, images.device)
        labels = [self._labels(caption) for caption in captions]
        texts = [" ".join(model.words(caption)) for caption in captions]
        if method in PIXEL_SPACE_METHODS:
            if method in RULE_METHODS:
                words, caption = self._explain_by_rule(images, replicas, method, labels)
            else:
                words, caption = self._explain_by_perturbation(
                    images, replicas, method, labels, perturbation
                )
            return CaptionExplanation([list(c) for c in captions], texts, words, caption)
        batch, steps = replicas.batch, replicas.steps
        with explaining(model, images.device):
            with Taps(model, layers(self.layer), replicas=steps, to_grid=self.to_grid) as taps:
                first = taps.taps[0]
                features = model.encode(first.feed(images) if first.taps_input else images)
                decode = getattr(model, "decode_last_logits", model.decode_logits)
                logits = decode(features, replicas.replica_tokens, replicas.lengths)
            name = "decode_logits" if decode == model.decode_logits else "decode_last_logits"
            check_logits_shape(model, name, logits, replicas.replica_tokens)
            scores = replicas.scores(logits)  # [B, T]
            grids = taps.gradients(scores)  # per layer: A, dY/dA [B*T, K, h, w]
            taps.release()
            if self.check:
                check_word_scores(model, images, replicas, scores, features)
        size = size or images.shape[-2:]
        words = fused_maps(grids, scores, method, size, labels)
        # The whole caption's gradient is the sum of its words'; every replica has the same A.
        caption = fused_maps(
            [(a.unflatten(0, (batch, steps))[:, 0], g.unflatten(0, (batch, steps)).sum(1))
             for a, g in grids],  # fmt: skip
            scores.sum(dim=1),
            method,
            size,
            [" ".join(label) for label in labels],
        )
        return CaptionExplanation([list(c) for c in captions], texts, words, caption)

    def _explain_by_rule(
        self, images: Tensor, replicas: WordReplicas, method: str, labels: list[list[str]]
    ) -> tuple[Explanation, Explanation]:
        """Pixel-space maps of every word `[B, T, 3, H, W]` and of every caption `[B, 3, H, W]`:
        a row per word (decoding the steps it depends on) and a row per whole caption."""
        batch, steps = replicas.batch, replicas.steps
        rows = replicas.score_rows()
        gradients, scores = rule_gradients(
            RULE_METHODS[method],
            teacher_forced(self.model),
            images[rows.images],
            rows.target,
            self.model,
            (rows.tokens, rows.steps),
        )
        word_rows, words = rows.word_rows, len(rows.word_rows)
        word_raw = gradients.new_zeros(batch * steps, *gradients.shape[1:])
        word_raw[word_rows] = gradients[:words]
        word_scores = scores.new_zeros(batch * steps)
        word_scores[word_rows] = scores[:words]
        if self.check:
            with explaining(self.model, images.device):
                check_word_scores(self.model, images, replicas, word_scores.view(batch, steps))
        return (
            pixel_explanation(
                word_raw.view(batch, steps, *gradients.shape[1:]),
                word_scores.view(batch, steps),
                method,
                labels,
            ),
            pixel_explanation(
                gradients[words:], scores[words:], method, [" ".join(label) for label in labels]
            ),
        )

    def _explain_by_perturbation(
        self,
        images: Tensor,
        replicas: WordReplicas,
        method: str,
        labels: list[list[str]],
        options: Mapping[str, Any] | None,
    ) -> tuple[Explanation, Explanation]:
        """Occlusion or RISE maps of every word `[B, T, H, W]` and of every caption `[B, H, W]`,
        from one sweep: each perturbed copy decodes its whole caption once, and its scores are
        every word's log-probability and their sum."""
        steps = replicas.steps
        explained = perturbation_maps(
            method,
            teacher_forced(self.model),
            images,
            CaptionWords(replicas.tokens, replicas.counts, steps),
            self.model,
            (replicas.tokens, replicas.counts),
            labels,
            options,
        )  # maps [B, T + 1, H, W]: the words, then the caption
        raw, maps, empty, scores = explained.raw, explained.maps, explained.empty, explained.scores
        if self.check:  # the sweep's unperturbed scores, against a call in another order
            with explaining(self.model, images.device):
                check_word_scores(self.model, images, replicas, scores[:, :steps])
        words = Explanation(
            raw[:, :steps], maps[:, :steps], empty[:, :steps] | ~replicas.valid,
            scores[:, :steps], method, labels,
        )  # fmt: skip
        caption = Explanation(
            raw[:, steps], maps[:, steps], empty[:, steps], scores[:, steps], method,
            [" ".join(label) for label in labels],
        )  # fmt: skip
        return words, caption

    def _labels(self, caption: Sequence[int]) -> list[str]:
        return self.model.words(caption) + (["<end>"] if self.include_end else [])
