"""Explain a VQA model: its top answers with probabilities, and the evidence for each.

One forward and one backward pass give the maps of all top-k answers: the tapped image layer
is replicated k times and replica j scores the j-th answer's logit. The counterfactual map
(what argues against an answer) reuses the same gradients.

Guided backpropagation, deconvnet and guided Grad-CAM (the registry's "rule" methods) explain
in pixel space through a
non-linear backward rule: the answers are found first, then each is a row of its own from the
input up (k copies of each image, one backward pass).

Occlusion and RISE (its "perturbation" methods) read every top answer's logit from the same
perturbed forwards: k maps for the cost of one sweep.

Every method's explanation is checked (`check=True`): the answer logits it explained must be
those of a plain call of the same images and questions in another order and company
(`mmcam.explainers.protocol_check`), so a model that sorts its batch by question length and does
not sort back is refused instead of giving each question another's answers and maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmcam.core.explanation import Explanation
from mmcam.core.protocols import VQAModel
from mmcam.core.tap import Grid, Layers, Taps, layers
from mmcam.core.targets import ClassLogit, ClassLogits
from mmcam.explainers.base import Explainer
from mmcam.explainers.protocol_check import ProtocolRules, check_rows
from mmcam.explainers.rows import (  # re-exported: their former home
    check_row_counts,
    move_to,
    question_rows,
    repeat_rows,
)
from mmcam.methods.cam import fused_maps
from mmcam.methods.pixel_space import perturbation_maps, pixel_explanation, rule_attributions
from mmcam.methods.registry import Method

__all__ = [  # the rows' names stay importable from here, their former home
    "VQAExplainer",
    "VQAExplanation",
    "move_to",
    "question_rows",
    "repeat_rows",
]

VQA_RULES = ProtocolRules(
    protocol="VQA model",
    scores="answer logits",
    causes="the model sorts its batch (by question length, for a packed LSTM) and does not "
    "restore the order, so each question gets another's answers (sort the rows back before "
    "returning the logits); rows depend on each other (BatchNorm in training mode, attention "
    "across the batch)",
    section="Your own VQA model",
)


@dataclass
class VQAExplanation:
    """The top-k answers of each question, their probabilities `[B, k]`, and their maps
    (`maps.scores` are the answer logits `[B, k]`).

    Attributes:
        answers: each question's top-k answers, best first.
        probabilities: their softmax probabilities `[B, k]`.
        maps: the answers' maps, `maps` `[B, k, H, W]`, labels the answers.
        counterfactual: the best answer's counterfactual map (what argues against it), when
            asked for; else None.
        question_relevance: for a single-stream transformer's attention methods, which question
            tokens each answer used, `[B, k, L]` (0 at padding); None for a model whose question
            does not share the image's attention (CNNs).
        question_tokens: each question's L tokens as the tokenizer spells them, or None.
    """

    answers: list[list[str]]
    probabilities: Tensor
    maps: Explanation
    counterfactual: Explanation | None
    question_relevance: Tensor | None = None
    question_tokens: list[list[str]] | None = None


class VQAExplainer(Explainer):
    """Grad-CAM family maps (and guided backprop / deconvnet maps in pixel space) for any model
    that satisfies `mmcam.core.protocols.VQAModel`.

    `layer` is the explained layer on the image side (a dotted name or a module), "input" for
    the model's first positional input, or a list of layers from the input up, whose maps are
    fused as LayerCAM's (`fused_maps`). With "input", a model that takes a precomputed feature
    grid (`model(grid [B, 2048, 14, 14], questions)`) is explained with respect to that grid,
    its maps upsampled to the image's `size`. `to_grid` reshapes the layer's output to
    `[N, K, h, w]` when it is not already a feature grid.

    With `check=True` (the default) every explanation, by every method, also verifies that the
    model's rows are independent and in order: the answer logits it explained must equal those of
    one plain call without gradients of the same images and questions in another order and
    company (`check_rows`: B + 1 rows); a model that sorts its batch and does not sort back, or
    whose rows depend on each other, raises instead of giving wrong answers and maps.
    `check=False` skips that call.

    Args:
        model: a VQA model that follows `VQAModel` (`answers`, `tokenize`, `unknown_words`,
            and answer logits from `model(images, tokens)`).
        layer: the explained layer on the image side, "input", or several layers from the input
            up.
        to_grid: reshapes the layer's output to `[N, K, h, w]`.
        check: verify on every explanation that the model's rows are independent and in order.

    Raises:
        TypeError: the model lacks part of the `VQAModel` protocol.
    """

    explainer_id = "vqa"

    def __init__(
        self, model: VQAModel, layer: Layers, *, to_grid: Grid | None = None, check: bool = True
    ) -> None:
        if not isinstance(model, VQAModel):
            raise TypeError(
                f"{type(model).__name__} lacks part of the VQAModel protocol "
                "(answers, tokenize, unknown_words, __call__); see mmcam.core.protocols"
            )
        self.model = model
        self.layer = layer
        self.to_grid = to_grid
        self.check = check

    def explain(
        self,
        images: Tensor,
        questions: Sequence[str],
        *,
        top_k: int = 3,
        method: str = "gradcam",
        counterfactual: bool = False,
        size: tuple[int, int] | None = None,
        perturbation: Mapping[str, Any] | None = None,
    ) -> VQAExplanation:
        """Answer each question about its image and map the evidence for the top-k answers by
        `method`, a method id this explainer offers (`offered()`): a gradient (CAM) method at the
        explained layer, a rule method ("guided_backprop", "deconvnet", "guided_gradcam") at the
        input, or "occlusion" / "rise" (all answers from one sweep; `perturbation` holds their
        options; raw maps `[B, k, H, W]`). Only the gradient methods give a counterfactual map.
        CAM maps are upsampled to `size` (height, width; default: the input's).

        Args:
            images: the preprocessed images `[B, C, H, W]`.
            questions: one question per image, as text.
            top_k: how many of the best answers are explained (at most the answer list's
                length).
            method: a method id this explainer offers, e.g. "gradcam", "hirescam",
                "guided_backprop", "occlusion".
            counterfactual: also map what argues against the best answer (gradient methods).
            size: the (height, width) CAM maps are upsampled to; None: the input's.
            perturbation: occlusion's or RISE's options.

        Returns:
            The `VQAExplanation`: the top-k answers, their probabilities and maps.

        Raises:
            ValueError: an unknown method or one this explainer does not offer, perturbation
                options for another kind of method, not one question per image, an empty
                question, a counterfactual asked of a method that is not a gradient method, or
                a model that breaks the protocol (with `check=True`).
        """
        record = self.method(method, perturbation)
        if len(questions) != images.shape[0]:
            raise ValueError(f"{len(questions)} questions for {images.shape[0]} images")
        for question in questions:
            if not question.strip():
                raise ValueError("empty question: ask something about the image")
        top_k = min(top_k, len(self.model.answers))
        tokens = move_to(self.model.tokenize(list(questions)), images.device)
        check_row_counts(tokens, images.shape[0])
        if counterfactual and record.kind != "gradient":
            raise ValueError(f"counterfactual maps come from the CAM methods, not from {method}")
        return self.dispatch(
            record, images, tokens, top_k,
            counterfactual=counterfactual, size=size, options=perturbation,
        )  # fmt: skip

    def by_gradient(
        self, record: Method, images: Tensor, tokens: object, top_k: int, **options: Any
    ) -> VQAExplanation:
        """CAM maps of the top-k answers from one forward and backward pass over k replicas."""
        batch = images.shape[0]
        with self.guard(images.device):
            taps = Taps(self.model, layers(self.layer), replicas=top_k, to_grid=self.to_grid)
            with taps:
                logits = self.model(images, repeat_rows(tokens, top_k))  # [B*k, A]
            logits = logits.view(batch, top_k, -1)
            best = logits[:, 0].detach().topk(top_k, dim=1).indices  # [B, k]
            scores = logits.gather(2, best[..., None]).squeeze(2)  # replica j: answer j
            grids = taps.gradients(scores)  # per layer: A, dY/dA [B*k, K, h, w]
            taps.release()
        probabilities = torch.softmax(logits[:, 0].detach(), dim=1).gather(1, best)
        answers = [[self.model.answers[i] for i in row] for row in best.tolist()]
        self.verify(images, tokens, best, scores, answers)
        size = options.get("size") or images.shape[-2:]
        maps = fused_maps(grids, scores, record.id, size, answers)
        against = None
        if options.get("counterfactual"):
            against = fused_maps(grids, scores, "counterfactual", size, answers)
        return VQAExplanation(answers, probabilities, maps, against)

    def verify(
        self, images: Tensor, tokens: object, best: Tensor, scores: Tensor, answers: list
    ) -> None:
        """With `check`, raise unless the explained logits `scores` `[B, k]` of answers `best`
        are those of a plain call of the images in another order and company (`check_rows`)."""
        if not self.check:
            return

        def plain(rows: Tensor) -> Tensor:
            return self.model(images[rows], question_rows(tokens, rows)).gather(1, best[rows])

        with self.guard(images.device):
            check_rows(
                self.model, scores, plain, None, VQA_RULES,
                lambda question, rank: f"the logit of answer {answers[question][rank]!r} (top "
                f"{rank + 1}) of question {question}",
            )  # fmt: skip

    def _top_answers(
        self, images: Tensor, tokens: object, top_k: int
    ) -> tuple[Tensor, list[list[str]], Tensor]:
        """The top-k answer indices `[B, k]`, their names and their probabilities `[B, k]`."""
        with self.guard(images.device), torch.no_grad():
            logits = self.model(images, tokens)  # [B, A]
        best = logits.topk(top_k, dim=1).indices  # [B, k]
        answers = [[self.model.answers[i] for i in row] for row in best.tolist()]
        return best, answers, torch.softmax(logits, dim=1).gather(1, best)

    def by_perturbation(
        self, record: Method, images: Tensor, tokens: object, top_k: int, **options: Any
    ) -> VQAExplanation:
        """Occlusion or RISE maps `[B, k, H, W]` of the top-k answers, from one sweep."""
        best, answers, probabilities = self._top_answers(images, tokens, top_k)
        maps = perturbation_maps(
            record, self.model, images, ClassLogits(best), self.model, (tokens,), answers,
            options.get("options"),
        )  # fmt: skip
        self.verify(images, tokens, best, maps.scores, answers)  # the unperturbed call
        return VQAExplanation(answers, probabilities, maps, None)

    def by_rule(
        self, record: Method, images: Tensor, tokens: object, top_k: int, **options: Any
    ) -> VQAExplanation:
        """Pixel-space maps `[B, k, 3, H, W]` of the top-k answers, a row per (image, answer)."""
        batch = images.shape[0]
        best, answers, probabilities = self._top_answers(images, tokens, top_k)
        gradients, scores = rule_attributions(
            record.function,
            record.times,
            self.model,
            images.repeat_interleave(top_k, dim=0),
            ClassLogit(best.flatten()),
            self.model if record.times else None,
            self.layer if record.times else None,
            (repeat_rows(tokens, top_k),),
        )
        self.verify(images, tokens, best, scores.view(batch, top_k), answers)
        maps = pixel_explanation(
            gradients.view(batch, top_k, *gradients.shape[1:]),
            scores.view(batch, top_k),
            record.id,
            answers,
        )
        return VQAExplanation(answers, probabilities, maps, None)
