"""Gradient-weighted cross-attention maps: the Grad-CAM used for ALBEF/BLIP-style models.

For a model whose text tokens attend to image patches through cross-attention, the map of a
score Y at one cross-attention layer with attention A `[H, Tq, Tk]` (heads, text queries, image
keys) is, per image key k (Li et al. 2021, ALBEF, sec. 6; BLIP's `compute_gradcam`)::

    M_k = 1/|Q| sum_{q in Q} mean_h ReLU(dY/dA_hqk) * A_hqk

with Q the text tokens the score is read from, and the class patch (key 0) dropped so the
remaining keys reshape to the patch grid. The explained layer is the module that receives the
attention probabilities (for BLIP: `...crossattention.self.dropout`, an identity in eval mode),
so the ordinary `Tap` hooks it. The attention already runs once per text row, so one forward and
one backward over the replicated text rows give every word's (or answer's) map.

`CaptionAttentionExplainer` and `VQAAttentionExplainer` are the explainers (registry id
"cross_attention": they run the registry's attention methods); `explain_caption_attention` and
`explain_vqa_attention` call them in one line.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcam.core.explanation import Explanation
from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.core.tap import Tap
from mmcam.explainers.base import Explainer
from mmcam.explainers.captioning import CaptionExplanation
from mmcam.explainers.rows import WordReplicas, move_to, repeat_features, repeat_rows
from mmcam.explainers.vqa import VQAExplanation
from mmcam.methods.attention import AttentionStack, patches
from mmcam.methods.registry import Method

METHOD = "attention_gradcam"
__all__ = [
    "METHOD",
    "CaptionAttentionExplainer",
    "VQAAttentionExplainer",
    "explain_caption_attention",
    "explain_vqa_attention",
]


class CaptionAttentionExplainer(Explainer):
    """Cross-attention maps of every word of each caption, and of the whole caption.

    `layer` receives the decoder's text-to-image attention probabilities `[N, H, L, Tk]`; `grid`
    is the patch grid (h, w). Word t's map reads the text positions 0..t (the BOS token and the
    words before it, whose states predict it); the caption's map reads the positions of all its
    words, with the gradient of the summed log-probability. `model.encode` must return a tensor
    (or a tuple of tensors) with the images along dim 0.
    """

    explainer_id = "cross_attention"

    def __init__(
        self,
        model: CaptionModel,
        layer: str | nn.Module,
        grid: tuple[int, int],
        *,
        include_end: bool = False,
    ) -> None:
        if not isinstance(model, CaptionModel):
            raise TypeError(f"{type(model).__name__} lacks part of the CaptionModel protocol")
        self.model, self.layer, self.grid, self.include_end = model, layer, grid, include_end

    def explain(
        self, images: Tensor, captions: Sequence[Sequence[int]], *, method: str = METHOD
    ) -> CaptionExplanation:
        """The maps of `captions` (token ids, one per image) by attention method `method`."""
        record = self.method(method)
        if len(captions) != images.shape[0]:
            raise ValueError(f"give one caption per image ({images.shape[0]} images)")
        return self.dispatch(record, images, captions)

    def by_attention(
        self, record: Method, images: Tensor, captions: Sequence[Sequence[int]]
    ) -> CaptionExplanation:
        model, grid, include_end = self.model, self.grid, self.include_end
        replicas = WordReplicas.of(model, captions, include_end, images.device)
        batch, steps = replicas.batch, replicas.steps
        tokens, counts, word_index = replicas.tokens, replicas.counts, replicas.word_index
        with self.guard(images.device):
            with torch.no_grad():
                features = repeat_features(model.encode(images), steps)  # rows: B*T
            with Tap(model, self.layer) as tap:
                logits = model.decode_logits(features, replicas.replica_tokens, replicas.lengths)
            scores = replicas.scores(logits)  # [B, T]
            attention, gradients = tap.gradients(scores)  # [B*T, H, L, Tk]
            tap.release()
        positions = torch.arange(tokens.shape[1], device=images.device)
        word_queries = positions[None, :] <= word_index[:, None]  # [B*T, L]: BOS .. word t
        words_raw = one_layer(record, attention, gradients, word_queries, grid)
        words_raw = words_raw.view(batch, steps, *grid)
        first = attention.view(batch, steps, *attention.shape[1:])[:, 0]  # A is the same for all t
        caption_queries = positions[None, :] < counts[:, None]  # [B, L]
        caption_gradients = gradients.view(batch, steps, *gradients.shape[1:]).sum(dim=1)
        caption_raw = one_layer(record, first, caption_gradients, caption_queries, grid)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        labels = [model.words(c) + (["<end>"] if include_end else []) for c in captions]
        words = Explanation.from_raw(words_raw, scores, size, record.id, labels)
        caption = Explanation.from_raw(
            caption_raw, scores.sum(dim=1), size, record.id, [" ".join(label) for label in labels]
        )
        texts = [" ".join(model.words(c)) for c in captions]
        return CaptionExplanation([list(c) for c in captions], texts, words, caption)


class VQAAttentionExplainer(Explainer):
    """Cross-attention maps of the top-k answers of each question.

    `layer` receives the question's attention probabilities over the image `[N, H, Tq, Tk]`;
    `grid` is the patch grid (h, w). The model runs once on the question rows repeated top_k
    times; the image side must follow the question rows' batch size.
    """

    explainer_id = "cross_attention"

    def __init__(self, model: VQAModel, layer: str | nn.Module, grid: tuple[int, int]) -> None:
        if not isinstance(model, VQAModel):
            raise TypeError(f"{type(model).__name__} lacks part of the VQAModel protocol")
        self.model, self.layer, self.grid = model, layer, grid

    def explain(
        self,
        images: Tensor,
        questions: Sequence[str],
        queries: Tensor,
        *,
        top_k: int = 3,
        method: str = METHOD,
    ) -> VQAExplanation:
        """The top-k answers' maps by attention method `method`; `queries` `[B, Tq]` (bool)
        marks the question tokens Q each map averages over (the words, without padding or
        special tokens)."""
        record = self.method(method)
        if len(questions) != images.shape[0]:
            raise ValueError(f"{len(questions)} questions for {images.shape[0]} images")
        return self.dispatch(record, images, questions, queries, top_k)

    def by_attention(
        self, record: Method, images: Tensor, questions: Sequence[str], queries: Tensor, top_k: int
    ) -> VQAExplanation:
        model, grid = self.model, self.grid
        top_k = min(top_k, len(model.answers))
        batch = images.shape[0]
        tokens = move_to(model.tokenize(list(questions)), images.device)
        with self.guard(images.device):
            with Tap(model, self.layer) as tap:
                logits = model(images, repeat_rows(tokens, top_k))  # [B*k, A]
            logits = logits.view(batch, top_k, -1)
            best = logits[:, 0].detach().topk(top_k, dim=1).indices  # [B, k]
            scores = logits.gather(2, best[..., None]).squeeze(2)  # replica j: answer j
            attention, gradients = tap.gradients(scores)  # [B*k, H, Tq, Tk]
            tap.release()
        rows = queries.to(images.device).repeat_interleave(top_k, dim=0)
        raw = one_layer(record, attention, gradients, rows, grid).view(batch, top_k, *grid)
        probabilities = torch.softmax(logits[:, 0].detach(), dim=1).gather(1, best)
        answers = [[model.answers[i] for i in row] for row in best.tolist()]
        size = (int(images.shape[-2]), int(images.shape[-1]))
        maps = Explanation.from_raw(raw, scores, size, record.id, answers)
        return VQAExplanation(answers, probabilities, maps, None)


def one_layer(
    record: Method, attention: Tensor, gradients: Tensor, queries: Tensor, grid: tuple[int, int]
) -> Tensor:
    """`record`'s maps `[N, h, w]` from one cross-attention layer read at the text tokens
    `queries` `[N, Tq]`."""
    stack = AttentionStack([], queries, queries, cross=[(attention, gradients)])
    return patches(record.function(stack), grid)


def explain_caption_attention(
    model: CaptionModel,
    images: Tensor,
    captions: Sequence[Sequence[int]],
    layer: str | nn.Module,
    grid: tuple[int, int],
    *,
    include_end: bool = False,
) -> CaptionExplanation:
    """Cross-attention maps of every word of each caption and of the whole caption
    (`CaptionAttentionExplainer`)."""
    explainer = CaptionAttentionExplainer(model, layer, grid, include_end=include_end)
    return explainer.explain(images, captions)


def explain_vqa_attention(
    model: VQAModel,
    images: Tensor,
    questions: Sequence[str],
    layer: str | nn.Module,
    grid: tuple[int, int],
    queries: Tensor,
    *,
    top_k: int = 3,
) -> VQAExplanation:
    """Cross-attention maps of the top-k answers of each question (`VQAAttentionExplainer`);
    `queries` `[B, Tq]` (bool) marks the question tokens each map averages over."""
    explainer = VQAAttentionExplainer(model, layer, grid)
    return explainer.explain(images, questions, queries, top_k=top_k)
