"""Explainers that read every attention layer of a transformer: raw attention, rollout,
gradient-weighted attention and relevance (`mmcam.methods.attention`) for an encoder-decoder
captioner (BLIP: vision encoder, causal text decoder with cross-attention) and a single-stream
VQA model (ViLT: question tokens, image class token and patches in one encoder).

An `AttentionLayout` names where the attention probabilities pass (the modules that receive
them: eager attention's dropout, an identity in eval mode) and the module whose output starts
the explained stack (`entry`, cut from what is below it). One forward pass runs each image
once; one backward pass, vectorised over the targets (each word of a caption, each top answer:
`torch.func.vmap` over `torch.autograd.grad` with one-hot output gradients), gives every
target's gradients at every layer, laid out as replicated rows (row b*T + t: target t of item
b, its attention repeated); the whole caption's gradients are the sum of its words'. Hooks are
removed and the model's state restored on every exit (the base's guard and `AttentionTaps`).
Attention computed by a fused kernel
(`attn_implementation="sdpa"`) never passes those modules: that is refused, naming the fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.explanation import Explanation
from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.core.tap import Grid, Tap, find_layer
from mmcam.core.targets import token_logprobs
from mmcam.explainers.base import Explainer
from mmcam.explainers.captioning import CaptionExplanation
from mmcam.explainers.cross_attention import CaptionAttentionExplainer
from mmcam.explainers.rows import WordReplicas, move_to
from mmcam.explainers.vqa import VQAExplanation
from mmcam.methods.attention import AttentionStack, Layer
from mmcam.methods.registry import Method

__all__ = ["AttentionLayout", "CaptionStackExplainer", "VQAStackExplainer"]


@dataclass(frozen=True)
class AttentionLayout:
    """Dotted names of the modules that receive a transformer's attention probabilities
    `[N, H, Tq, Tk]`, each list from the input up: the text stream's self-attention (a single
    stream: its one encoder), its cross-attention to the image (one per text layer, or none), an
    image encoder's self-attention (or none); `entry`, the module whose output starts the stack;
    `layer`, the text layer the one-layer methods read; `read_at`, the token a single stream's
    answer is read from (ViLT's pooler: the first)."""

    entry: str
    text: tuple[str, ...]
    cross: tuple[str, ...] = ()
    image: tuple[str, ...] = ()
    layer: int = -1
    read_at: int = 0

    def modules(self) -> list[str]:
        """The tapped modules, the entry first (it cuts the graph)."""
        return [self.entry, *self.image, *self.text, *self.cross]

    def split(self, layers: Sequence[Layer]) -> dict[str, list[Layer]]:
        """The recorded (A, dY/dA) of `modules()[1:]` as AttentionStack's keyword arguments."""
        image, text = len(self.image), len(self.text)
        return {
            "image": list(layers[:image]),
            "text": list(layers[image : image + text]),
            "cross": list(layers[image + text :]),
        }


class AttentionTaps:
    """`layout.entry` tapped as `Tap` does (cut from what is below it) and every attention
    module's output recorded as it passes. Attention that does not depend on the entry (a text
    decoder's first self-attention) becomes a leaf of its own, so its gradient is read too. The
    hooks are removed on every exit."""

    def __init__(self, model: nn.Module, layout: AttentionLayout) -> None:
        self.entry = Tap(model, layout.entry)
        self.modules = [find_layer(model, name) for name in layout.modules()[1:]]
        self.recorded: dict[str, Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> AttentionTaps:
        self.recorded = {}
        self.entry.__enter__()
        try:
            for name, module in self.modules:
                self._handles.append(module.register_forward_hook(self._recorder(name)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.entry.__exit__(*exc_info)

    def _recorder(self, name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            if name in self.recorded:
                raise RuntimeError(f"attention module {name!r} ran twice in one forward pass")
            if not torch.is_grad_enabled():
                raise RuntimeError(
                    f"attention module {name!r} ran before {self.entry.name!r}, which starts the "
                    "explained stack: name an entry below every attention layer"
                )
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
            self.recorded[name] = output
            return output.clone()  # a copy goes on: in-place operations after it stay legal

        return record

    def gradients(self, scores: Tensor) -> list[Layer]:
        """Every attention layer's A and dY/dA (detached), in the layout's order, for each of
        the T targets of each item, `scores` `[B, T]`, from one backward pass vectorised over
        the targets: `[B*T, H, Tq, Tk]` each, row b*T + t for target t of item b."""
        if scores.dim() != 2:
            raise ValueError(f"scores must be [items, targets], got {tuple(scores.shape)}")
        self.entry.check_scores(scores[:, 0])
        for name, _ in self.modules:
            if name not in self.recorded:
                raise RuntimeError(
                    f"no attention probabilities passed {name!r}: the model computes attention "
                    "in a fused kernel; load it with attn_implementation='eager'"
                )
        targets = scores.shape[1]
        inputs = [self.recorded[name] for name, _ in self.modules]

        def backward(one_hot: Tensor) -> list[Tensor]:
            grads = torch.autograd.grad(
                scores, inputs, one_hot, retain_graph=True, allow_unused=True
            )
            return [
                torch.zeros_like(a) if g is None else g for a, g in zip(inputs, grads, strict=True)
            ]

        one_hot = torch.eye(targets, dtype=scores.dtype, device=scores.device)[:, None]
        one_hots = one_hot.expand(targets, *scores.shape)
        grads = None
        if targets > 1:
            try:
                grads = torch.func.vmap(backward)(one_hots)
            except RuntimeError as error:  # e.g. a custom backward that calls .item()
                if "vmap" not in str(error):
                    raise
                warnings.warn(
                    f"the model's backward pass does not run under torch.func.vmap ({error}); "
                    "one backward pass per target instead (the same maps, slower)",
                    stacklevel=4,
                )
        if grads is None:  # one target, or no vmap: a backward pass per target
            per_target = [backward(row) for row in one_hots]
            grads = [torch.stack(layer) for layer in zip(*per_target, strict=True)]
        return [
            (a.detach().repeat_interleave(targets, dim=0), as_rows(g))
            for a, g in zip(inputs, grads, strict=True)
        ]

    def release(self) -> None:
        self.recorded = {}
        self.entry.release()


def as_rows(gradients: Tensor) -> Tensor:
    """Gradients batched over targets `[T, B, ...]` as rows `[B*T, ...]` (b*T + t)."""
    return gradients.transpose(0, 1).flatten(0, 1)


def key_grid(to_grid: Grid, keys: Tensor) -> Tensor:
    """Key relevance `[N, Tk]` as patch maps `[N, h, w]` (the last h*w keys, through the
    adapter's `to_grid`, which zeroes padding patches)."""
    return to_grid(keys[..., None])[:, 0]


class CaptionStackExplainer(CaptionAttentionExplainer):
    """Every word's and the whole caption's map by an attention method, for an encoder-decoder
    captioner. Word t is read at the position that predicts it (`rows`), from the text tokens
    BOS .. t (`context`); the caption at the positions of all its words."""

    explainer_id = "attention_captions"

    def __init__(
        self,
        model: CaptionModel,
        layout: AttentionLayout,
        to_grid: Grid,
        *,
        include_end: bool = False,
    ) -> None:
        # the parent's one layer and grid go unused: the layout names every layer, to_grid the grid
        super().__init__(model, layout.entry, (0, 0), include_end=include_end)
        self.layout, self.to_grid = layout, to_grid

    def explain(
        self,
        images: Tensor,
        captions: Sequence[Sequence[int]],
        *,
        method: str = "relevance",
        perturbation: Any = None,
    ) -> CaptionExplanation:
        """The maps of `captions` (token ids, one per image) by attention method `method`.
        `perturbation` is accepted, and unused, so that a dataset run calls every caption
        explainer alike: the attention methods perturb nothing."""
        return super().explain(images, captions, method=method)

    def by_attention(
        self, record: Method, images: Tensor, captions: Sequence[Sequence[int]]
    ) -> CaptionExplanation:
        model, layout = self.model, self.layout
        replicas = WordReplicas.of(model, captions, self.include_end, images.device)
        batch, steps, counts = replicas.batch, replicas.steps, replicas.counts
        with self.guard(images.device):
            with AttentionTaps(model, layout) as taps:
                features = model.encode(images)
                logits = model.decode_logits(features, replicas.tokens, replicas.scored)
            scores = token_logprobs(logits, replicas.tokens, replicas.scored)[:, :steps]
            scores = scores * replicas.valid  # past a caption's end: no word, no gradient
            layers = layout.split(taps.gradients(scores))  # rows b*T + t: word t of caption b
            taps.release()
        positions = torch.arange(replicas.tokens.shape[1], device=images.device)[None]
        index = replicas.word_index[:, None]
        words = AttentionStack(
            rows=positions == index, context=positions <= index, layer=layout.layer, **layers
        )
        caption_rows = positions < counts[:, None]
        whole = {  # one replica's attention, the sum of its words' gradients
            key: [(first_replica(a, steps), summed_replicas(g, steps)) for a, g in value]
            for key, value in layers.items()
        }
        caption = AttentionStack(
            rows=caption_rows, context=caption_rows, layer=layout.layer, **whole
        )
        words_raw = key_grid(self.to_grid, record.function(words))
        words_raw = words_raw * replicas.valid.view(-1, 1, 1)  # past a caption's end: no word
        caption_raw = key_grid(self.to_grid, record.function(caption))
        size = (int(images.shape[-2]), int(images.shape[-1]))
        labels = [model.words(c) + (["<end>"] if self.include_end else []) for c in captions]
        word_maps = Explanation.from_raw(
            words_raw.view(batch, steps, *words_raw.shape[-2:]), scores, size, record.id, labels
        )
        caption_maps = Explanation.from_raw(
            caption_raw, scores.sum(dim=1), size, record.id, [" ".join(w) for w in labels]
        )
        for maps in (word_maps, caption_maps):
            maps.target_independent = record.target_independent
        texts = [" ".join(model.words(c)) for c in captions]
        return CaptionExplanation([list(c) for c in captions], texts, word_maps, caption_maps)


def first_replica(tensor: Tensor, steps: int) -> Tensor:
    return tensor.view(-1, steps, *tensor.shape[1:])[:, 0]


def summed_replicas(tensor: Tensor, steps: int) -> Tensor:
    return tensor.view(-1, steps, *tensor.shape[1:]).sum(dim=1)


class VQAStackExplainer(Explainer):
    """The top-k answers' maps by an attention method, for a single-stream VQA model whose
    encoder runs the question tokens (first) with the image tokens (last: the class token, then
    the patches); each answer is read at `layout.read_at`, and its question tokens' relevance is
    returned beside the map. `model.tokenize` must give `input_ids` and `attention_mask`."""

    explainer_id = "attention_vqa"

    def __init__(self, model: VQAModel, layout: AttentionLayout, to_grid: Grid) -> None:
        if not isinstance(model, VQAModel):
            raise TypeError(f"{type(model).__name__} lacks part of the VQAModel protocol")
        self.model, self.layout, self.to_grid = model, layout, to_grid

    def explain(
        self,
        images: Tensor,
        questions: Sequence[str],
        *,
        top_k: int = 3,
        method: str = "relevance",
        answers: Tensor | None = None,
        perturbation: Any = None,
    ) -> VQAExplanation:
        """The top-k answers, their maps and their question tokens' relevance by `method`;
        with `answers` (answer indices `[B, k]`), those answers instead of the model's top-k
        (a randomised copy explains the trained model's answers). `perturbation` is accepted,
        and unused, so that a dataset run calls every VQA explainer alike: the attention methods
        perturb nothing."""
        record = self.method(method)
        if len(questions) != images.shape[0]:
            raise ValueError(f"{len(questions)} questions for {images.shape[0]} images")
        if answers is not None and answers.shape[0] != images.shape[0]:
            raise ValueError(f"answers for {answers.shape[0]} images, not {images.shape[0]}")
        return self.dispatch(record, images, questions, top_k, answers)

    def by_attention(
        self,
        record: Method,
        images: Tensor,
        questions: Sequence[str],
        top_k: int,
        answers: Tensor | None,
    ) -> VQAExplanation:
        model, layout = self.model, self.layout
        top_k = min(top_k, len(model.answers)) if answers is None else answers.shape[1]
        batch = images.shape[0]
        tokens: Any = move_to(model.tokenize(list(questions)), images.device)
        if not isinstance(tokens, Mapping) or "attention_mask" not in tokens:
            raise TypeError(
                f"{type(model).__name__}.tokenize must return a mapping with input_ids and "
                "attention_mask: the question tokens share the attention with the image"
            )
        with self.guard(images.device):
            with AttentionTaps(model, layout) as taps:
                logits = model(images, tokens)  # [B, A]
            best = logits.detach().topk(top_k, dim=1).indices  # [B, k]
            if answers is not None:
                best = answers.to(images.device)
            scores = logits.gather(1, best)
            layers = layout.split(taps.gradients(scores))  # rows b*k + j: answer j of item b
            taps.release()
        mask = tokens["attention_mask"].bool().repeat_interleave(top_k, dim=0)  # [B*k, L]
        length, total = mask.shape[1], layers["text"][0][0].shape[-1]
        rows = torch.zeros(batch * top_k, total, dtype=torch.bool, device=images.device)
        rows[:, layout.read_at] = True
        context = torch.zeros_like(rows)
        context[:, :length] = mask
        keys = record.function(
            AttentionStack(rows=rows, context=context, layer=layout.layer, **layers)
        )
        raw = key_grid(self.to_grid, keys)
        question = torch.where(mask, keys[:, :length], 0).view(batch, top_k, length)
        probabilities = torch.softmax(logits.detach(), dim=1).gather(1, best)
        answers = [[model.answers[i] for i in row] for row in best.tolist()]
        size = (int(images.shape[-2]), int(images.shape[-1]))
        maps = Explanation.from_raw(
            raw.view(batch, top_k, *raw.shape[-2:]), scores, size, record.id, answers
        )
        maps.target_independent = record.target_independent
        spell = getattr(model, "words", None)
        spelled = [spell(ids) for ids in tokens["input_ids"].tolist()] if spell else None
        return VQAExplanation(answers, probabilities, maps, None, question, spelled)
