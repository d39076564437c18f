"""Explain a captioner: a map for every word of a caption, and one for the whole caption.

Generation is not differentiable, so the caption is decoded first and then explained with
teacher forcing. All words are explained in one forward and one backward pass: the tapped
layer's output is replicated once per word, replica t scores word t, and replica t only
decodes the t + 1 steps word t depends on. Gradients are linear, so the whole caption's
gradient is the sum of the words' gradients and its map comes for free.

Guided backpropagation, deconvnet and guided Grad-CAM (the registry's "rule" methods) explain
in pixel space through a non-linear backward rule, so there each word, and the whole caption, is
a row of its own from the input up: one forward and one backward pass over (words + 1) copies of
each image.

Occlusion and RISE (its "perturbation" methods) need no gradient: one teacher-forced forward of a
perturbed copy gives every word's log-probability, so all words and the whole caption are read
from one sweep of perturbed copies (`CaptionWords`), not one sweep per word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmcam.core.explanation import Explanation
from mmcam.core.protocols import EXPLAINED_MEMBERS, CaptionModel
from mmcam.core.tap import Grid, Layers, Taps, layers
from mmcam.core.targets import CaptionWords, token_logprobs
from mmcam.explainers.base import Explainer
from mmcam.explainers.protocol_check import ProtocolRules, check_rows
from mmcam.explainers.rows import (  # re-exported: their former home
    ScoreRows,
    WordReplicas,
    caption_tokens,
    check_logits_shape,
    replica_rows,
    teacher_forced,
)
from mmcam.methods.cam import fused_maps
from mmcam.methods.pixel_space import perturbation_maps, pixel_explanation, rule_attributions
from mmcam.methods.registry import Method

__all__ = [  # the rows' names stay importable from here, their former home
    "CaptionExplainer",
    "CaptionExplanation",
    "ScoreRows",
    "WordReplicas",
    "caption_tokens",
    "check_logits_shape",
    "check_word_scores",
    "teacher_forced",
]


@dataclass
class CaptionExplanation:
    """Per-word maps (`words`: scores `[B, T]`, rows past a caption's end are empty) and the
    whole caption's map (`caption`: scores `[B]`, the summed word log-probabilities).

    Attributes:
        captions: each image's caption as token ids, without BOS / EOS.
        texts: each caption as text.
        words: the word maps, `maps` `[B, T, H, W]`, labels the words.
        caption: the whole caption's map, `maps` `[B, H, W]`.
    """

    captions: list[list[int]]  # token ids, without BOS/EOS
    texts: list[str]
    words: Explanation
    caption: Explanation

    def word_labels(self, index: int) -> list[str]:
        """The words of image `index`, one per map in `words.maps[index]`.

        Args:
            index: the image's position in the batch.

        Returns:
            Its words (the panels' titles of a figure).
        """
        return self.words.labels[index]


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
        encoded = replica_rows(features, rows * steps, replicas.batch * steps)
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


class CaptionExplainer(Explainer):
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

    Args:
        model: a captioner that follows `CaptionModel` (three token ids, `encode`,
            `decode_logits`, `words`; `generate` to caption images itself).
        layer: the explained layer inside `encode`, "input", or several layers from the input up.
        to_grid: reshapes the layer's output to `[N, K, h, w]`.
        include_end: also explain the end-of-caption token.
        check: verify on every explanation that the model keeps the protocol.

    Raises:
        TypeError: the model lacks part of the `CaptionModel` protocol.
    """

    explainer_id = "captions"

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
        """The model's captions (token ids), decoded in eval mode without gradients.

        Args:
            images: the preprocessed images `[B, C, H, W]`.
            max_length: the longest caption, in tokens.
            beam_size: the beam width (1: greedy).

        Returns:
            Each image's caption as token ids, without BOS and EOS.

        Raises:
            TypeError: the model has no `generate`.
        """
        if not hasattr(self.model, "generate"):
            raise TypeError(
                f"{type(self.model).__name__} has no generate(images, max_length, beam_size): "
                "give the captions to explain (token ids), or add generate"
            )
        with self.guard(images.device), torch.no_grad():
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
        `method`, a method id this explainer offers (`offered()`): a gradient (CAM) method at the
        explained layer, a rule method ("guided_backprop", "deconvnet", "guided_gradcam") at the
        input, or "occlusion" / "rise" (all words from one sweep; `perturbation` holds their
        options, e.g. `{"window": 16, "stride": 8}` or `{"n_masks": 1000, "cell": 16}`; raw maps
        are then `[B, T, H, W]`). CAM maps are upsampled to `size` (height, width; default: the
        input's), e.g. the image size when the input is a precomputed feature grid.

        Args:
            images: the preprocessed images `[B, C, H, W]`, as `model.encode` takes them.
            captions: each image's caption as token ids (without BOS / EOS); None: the model's
                own (`generate`).
            method: a method id this explainer offers, e.g. "gradcam", "hirescam",
                "guided_backprop", "occlusion".
            max_length: the longest generated caption, in tokens.
            beam_size: the beam of the generated captions (1: greedy).
            size: the (height, width) CAM maps are upsampled to; None: the input's.
            perturbation: occlusion's or RISE's options.

        Returns:
            The `CaptionExplanation`: every word's map and the whole caption's.

        Raises:
            ValueError: an unknown method or one this explainer does not offer, perturbation
                options for another kind of method, not one caption per image, or a model
                that breaks the protocol (with `check=True`; the message names the likely
                causes).
            TypeError: `captions` is None and the model has no `generate`.
        """
        record = self.method(method, perturbation)
        if captions is None:
            captions = self.generate(images, max_length, beam_size)
        if len(captions) != images.shape[0]:
            raise ValueError(f"{len(captions)} captions for {images.shape[0]} images")
        model = self.model
        replicas = WordReplicas.of(model, captions, self.include_end, images.device)
        labels = [self._labels(caption) for caption in captions]
        texts = [" ".join(model.words(caption)) for caption in captions]
        words, caption = self.dispatch(
            record, images, replicas, labels, size=size, options=perturbation
        )
        return CaptionExplanation([list(c) for c in captions], texts, words, caption)

    def verify(
        self, images: Tensor, replicas: WordReplicas, scores: Tensor, features: Any = None
    ) -> None:
        """With `check`, the explained word scores `[B, T]` against a plain call
        (`check_word_scores`), inside the model-state guard."""
        if self.check:
            with self.guard(images.device):
                check_word_scores(self.model, images, replicas, scores, features)

    def by_gradient(
        self, record: Method, images: Tensor, replicas: WordReplicas, labels: list, **options: Any
    ) -> tuple[Explanation, Explanation]:
        """CAM maps of every word `[B, T, h, w]` and caption from one forward and backward pass
        over the word replicas at the explained layer."""
        model = self.model
        batch, steps = replicas.batch, replicas.steps
        with self.guard(images.device):
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
        self.verify(images, replicas, scores, features)
        size = options.get("size") or images.shape[-2:]
        words = fused_maps(grids, scores, record.id, size, labels)
        # The whole caption's gradient is the sum of its words'; every replica has the same A.
        caption = fused_maps(
            [
                (a.unflatten(0, (batch, steps))[:, 0], g.unflatten(0, (batch, steps)).sum(1))
                for a, g in grids
            ],  # fmt: skip
            scores.sum(dim=1),
            record.id,
            size,
            [" ".join(label) for label in labels],
        )
        return words, caption

    def by_rule(
        self, record: Method, images: Tensor, replicas: WordReplicas, labels: list, **options: Any
    ) -> tuple[Explanation, Explanation]:
        """Pixel-space maps of every word `[B, T, 3, H, W]` and of every caption `[B, 3, H, W]`:
        a row per word (decoding the steps it depends on) and a row per whole caption."""
        batch, steps = replicas.batch, replicas.steps
        rows = replicas.score_rows()
        gradients, scores = rule_attributions(
            record.function,
            record.times,
            teacher_forced(self.model),
            images[rows.images],
            rows.target,
            self.model,
            self.layer if record.times else None,
            (rows.tokens, rows.steps),
        )
        word_rows, words = rows.word_rows, len(rows.word_rows)
        word_raw = gradients.new_zeros(batch * steps, *gradients.shape[1:])
        word_raw[word_rows] = gradients[:words]
        word_scores = scores.new_zeros(batch * steps)
        word_scores[word_rows] = scores[:words]
        self.verify(images, replicas, word_scores.view(batch, steps))
        return (
            pixel_explanation(
                word_raw.view(batch, steps, *gradients.shape[1:]),
                word_scores.view(batch, steps),
                record.id,
                labels,
            ),
            pixel_explanation(
                gradients[words:], scores[words:], record.id, [" ".join(label) for label in labels]
            ),
        )

    def by_perturbation(
        self, record: Method, images: Tensor, replicas: WordReplicas, labels: list, **options: Any
    ) -> tuple[Explanation, Explanation]:
        """Occlusion or RISE maps of every word `[B, T, H, W]` and of every caption `[B, H, W]`,
        from one sweep: each perturbed copy decodes its whole caption once, and its scores are
        every word's log-probability and their sum."""
        steps = replicas.steps
        explained = perturbation_maps(
            record,
            teacher_forced(self.model),
            images,
            CaptionWords(replicas.tokens, replicas.counts, steps),
            self.model,
            (replicas.tokens, replicas.counts),
            labels,
            options.get("options"),
        )  # maps [B, T + 1, H, W]: the words, then the caption
        raw, maps, empty, scores = explained.raw, explained.maps, explained.empty, explained.scores
        self.verify(images, replicas, scores[:, :steps])  # the sweep's unperturbed scores
        words = Explanation(
            raw[:, :steps], maps[:, :steps], empty[:, :steps] | ~replicas.valid,
            scores[:, :steps], record.id, labels,
        )  # fmt: skip
        caption = Explanation(
            raw[:, steps], maps[:, steps], empty[:, steps], scores[:, steps], record.id,
            [" ".join(label) for label in labels],
        )  # fmt: skip
        return words, caption

    def _labels(self, caption: Sequence[int]) -> list[str]:
        return self.model.words(caption) + (["<end>"] if self.include_end else [])
