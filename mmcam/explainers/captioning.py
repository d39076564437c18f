"""Explain a captioner: a map for every word of a caption, and one for the whole caption.

Generation is not differentiable, so the caption is decoded first and then explained with
teacher forcing. All words are explained in one forward and one backward pass: the tapped
layer's output is replicated once per word, replica t scores word t, and replica t only
decodes the t + 1 steps word t depends on. Gradients are linear, so the whole caption's
gradient is the sum of the words' gradients and its map comes for free.

Guided backpropagation and deconvnet (`RULE_METHODS`) explain in pixel space through a
non-linear backward rule, so there each word, and the whole caption, is a row of its own from
the input up: one forward and one backward pass over (words + 1) copies of each image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcam.core.explanation import Explanation
from mmcam.core.model_state import explaining
from mmcam.core.protocols import CaptionModel
from mmcam.core.tap import Grid, Layers, Taps, layers
from mmcam.core.targets import CaptionRows, token_logprobs
from mmcam.methods.cam import fused_maps
from mmcam.methods.pixel_space import RULE_METHODS, check_method, pixel_explanation, rule_gradients


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
    """images, tokens, steps -> the teacher-forced logits: the forward the pixel methods run."""

    def forward(images: Tensor, tokens: Tensor, steps: Tensor) -> Tensor:
        return model.decode_logits(model.encode(images), tokens, steps)

    return forward


@dataclass
class WordReplicas:
    """Teacher-forcing input with one replica per (image, word): row b*T + t scores word t of
    image b and decodes only steps 0..t (`lengths`)."""

    tokens: Tensor  # [B, L]
    counts: Tensor  # [B]: words explained per image
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
        counts = counts + int(include_end)
        steps = int(counts.max())
        word_index = torch.arange(steps, device=device).repeat(len(captions))
        return cls(tokens, counts, word_index, tokens.repeat_interleave(steps, dim=0))

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


class CaptionExplainer:
    """Grad-CAM family maps (and guided backprop / deconvnet maps in pixel space) for any model
    that satisfies `mmcam.core.protocols.CaptionModel`.

    `layer` is the explained layer inside `model.encode` (a dotted name or a module), or a
    list of layers from the input up, whose maps are fused as LayerCAM's (`fused_maps`);
    `to_grid` reshapes its output to `[N, K, h, w]` when it is not already a feature grid.
    `include_end=True` also explains the end-of-caption token (labelled "<end>").
    """

    def __init__(
        self,
        model: CaptionModel,
        layer: Layers,
        *,
        to_grid: Grid | None = None,
        include_end: bool = False,
    ) -> None:
        if not isinstance(model, CaptionModel):
            raise TypeError(
                f"{type(model).__name__} lacks part of the CaptionModel protocol "
                "(encode, decode_logits, generate, words, bos_index, eos_index, pad_index); "
                "see mmcam.core.protocols"
            )
        self.model = model
        self.layer = layer
        self.to_grid = to_grid
        self.include_end = include_end

    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """The model's captions (token ids), decoded in eval mode without gradients."""
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
    ) -> CaptionExplanation:
        """Maps of every word of each image's caption (generated when `captions` is None) by
        `method`: a CAM method of `mmcam.methods.GRADIENT_METHODS` at the explained layer,
        or "guided_backprop" / "deconvnet" at the input."""
        check_method(method)
        if captions is None:
            captions = self.generate(images, max_length, beam_size)
        if len(captions) != images.shape[0]:
            raise ValueError(f"{len(captions)} captions for {images.shape[0]} images")
        model = self.model
        replicas = WordReplicas.of(model, captions, self.include_end, images.device)
        labels = [self._labels(caption) for caption in captions]
        texts = [" ".join(model.words(caption)) for caption in captions]
        if method in RULE_METHODS:
            words, caption = self._explain_by_rule(images, replicas, method, labels)
            return CaptionExplanation([list(c) for c in captions], texts, words, caption)
        batch, steps = replicas.batch, replicas.steps
        with explaining(model, images.device):
            with Taps(model, layers(self.layer), replicas=steps, to_grid=self.to_grid) as taps:
                features = model.encode(images)
                decode = getattr(model, "decode_last_logits", model.decode_logits)
                logits = decode(features, replicas.replica_tokens, replicas.lengths)
            scores = replicas.scores(logits)  # [B, T]
            grids = taps.gradients(scores)  # per layer: A, dY/dA [B*T, K, h, w]
            taps.release()
        size = images.shape[-2:]
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

    def _labels(self, caption: Sequence[int]) -> list[str]:
        return self.model.words(caption) + (["<end>"] if self.include_end else [])
