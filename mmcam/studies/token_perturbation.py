"""Chefer et al.'s perturbation test over a split: each method's map orders the image's patch
tokens, which are removed at `REMOVAL_STEPS` (most relevant first: positive; least relevant
first: negative), and the area under the mean score curve is reported per method, a random order
as the baseline; the image's class token stays.

- VQA, a ViLT model: the top answer's map, scored by the standard VQA accuracy of the model's
  answer at each step; the attention methods' question-token relevance orders the question's
  tokens the same way ([CLS] and [SEP] never removed).
- Captions, a BLIP model: each word's map, scored by the word's teacher-forced log-probability
  (the caption is the model's own); removed patch tokens are taken out of the sequence before
  the vision encoder (its attention has no mask), so neither the encoder nor the decoder sees
  them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mmcam.data.annotations import VQAItem
from mmcam.data.images import load_image
from mmcam.evaluation.token_perturbation import REMOVAL_STEPS, curve_auc, kept_tokens
from mmcam.evaluation.vqa_accuracy import vqa_accuracy
from mmcam.explainers.attention_stack import CaptionStackExplainer, VQAStackExplainer
from mmcam.explainers.hf.adapters import PatchTokenCaptionExplainer
from mmcam.explainers.vqa import VQAExplainer

__all__ = ["TokenCurves", "caption_token_curves", "perturbation_methods", "vqa_token_curves"]

RANDOM = "random"  # the baseline's row: every token tied, so in a seeded random order


def perturbation_methods(stack: type = VQAStackExplainer) -> list[str]:
    """The methods compared: every attention method the attention-stack explainer `stack` runs,
    and Grad-CAM on the patch tokens."""
    return [*stack.offered(), "gradcam"]


@dataclass
class TokenCurves:
    """The summed score curves of each method (and the random baseline), image patches and
    question tokens, positive and negative, over `count` items (questions or words)."""

    steps: Sequence[float] = REMOVAL_STEPS
    count: int = 0
    sums: dict[tuple[str, str, str], Tensor] = field(default_factory=dict)

    def add(self, method: str, tokens: str, direction: str, accuracy: Tensor) -> None:
        key = (method, tokens, direction)
        self.sums[key] = self.sums.get(key, torch.zeros(len(self.steps))) + accuracy

    def aucs(self) -> dict[str, dict[str, float]]:
        """`{"positive_auc": {method: area}, "negative_auc": ..., "text_positive_auc": ...,
        "text_negative_auc": ...}` of the mean curves."""
        out: dict[str, dict[str, float]] = {}
        for (method, tokens, direction), total in self.sums.items():
            name = f"{'text_' if tokens == 'text' else ''}{direction}_auc"
            curve = (total / max(self.count, 1)).tolist()
            out.setdefault(name, {})[method] = curve_auc(curve, self.steps)
        return out


def vqa_token_curves(
    adapter: torch.nn.Module,
    items: Iterable[tuple[VQAItem, str]],
    methods: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> TokenCurves:
    """The curves of `items` ((question, image file) pairs) for a `ViltVQA` adapter."""
    methods = list(methods or perturbation_methods())
    stack = VQAStackExplainer(adapter, adapter.attention_layout(), adapter.to_grid)
    layer = VQAExplainer(adapter, adapter.layer, to_grid=adapter.to_grid)
    curves = TokenCurves()
    for item, file in items:
        pixels = adapter.preprocess(load_image(file)).pixel_values  # [1, 3, H, W]
        tokens = adapter.tokenize([item.question])
        length = int(tokens["attention_mask"].sum())
        removable = torch.zeros(tokens["input_ids"].shape[1], dtype=torch.bool)
        removable[1 : length - 1] = True  # not [CLS], not [SEP]
        found = {m: _relevance(m, stack, layer, pixels, item.question) for m in methods}
        patches = next(iter(found.values()))[0]
        found[RANDOM] = (torch.zeros_like(patches), torch.zeros(removable.shape[0]))  # all tied
        for method, (patches, text) in found.items():
            for direction in ("positive", "negative"):
                positive = direction == "positive"
                keep = kept_tokens(patches, positive=positive, seed=seed)
                curves.add(method, "image", direction, _accuracy(adapter, pixels, tokens, item,
                                                                 patch_keep=keep))  # fmt: skip
                if text is not None:
                    keep = kept_tokens(text, positive=positive, removable=removable, seed=seed)
                    curves.add(method, "text", direction, _accuracy(adapter, pixels, tokens, item,
                                                                    text_keep=keep))  # fmt: skip
        curves.count += 1
    return curves


def caption_token_curves(
    captioner: torch.nn.Module,
    files: Iterable[str],
    methods: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> TokenCurves:
    """The curves of every word of the model's caption of each image file, for a
    `BlipCaptioner` adapter."""
    methods = list(methods or perturbation_methods(CaptionStackExplainer))
    stack = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    layer = PatchTokenCaptionExplainer(captioner, captioner.layer, to_grid=captioner.to_grid)
    curves = TokenCurves()
    for file in files:
        pixels = captioner.preprocess(load_image(file)).pixel_values  # [1, 3, H, W]
        caption = captioner.generate(pixels)[0]
        found = {}
        for method in methods:
            words = (
                (stack if stack.runs(method) else layer)
                .explain(pixels, [caption], method=method)
                .words.raw[0]
            )
            found[method] = words[: len(caption)].flatten(1)  # [T, h*w]
        found[RANDOM] = torch.zeros_like(next(iter(found.values())))  # all tied
        tokens = torch.tensor([[captioner.bos_index, *caption]], device=pixels.device)
        for position, word in enumerate(caption):
            for method, maps in found.items():
                for direction in ("positive", "negative"):
                    keep = kept_tokens(maps[position], positive=direction == "positive", seed=seed)
                    score = _word_logprob(captioner, pixels, tokens, position, word, keep)
                    curves.add(method, "image", direction, score)
            curves.count += 1
    return curves


@torch.no_grad()
def _word_logprob(
    captioner: torch.nn.Module, pixels: Tensor, tokens: Tensor, position: int, word: int,
    keep: Tensor,
) -> Tensor:  # fmt: skip
    """The log-probability of `word` at `position` at each step, with only the patch tokens of
    that step's row of `keep` `[S, P]` left in the vision encoder (and so in the decoder's view)."""
    scores = []
    for row in keep:
        features = captioner.encode(pixels, patch_keep=row)
        logits = captioner.decode_logits(features, tokens, None)
        scores.append(torch.log_softmax(logits[0, position].float(), dim=-1)[word])
    return torch.stack(scores).cpu()


def _relevance(
    method: str, stack: VQAStackExplainer, layer: VQAExplainer, pixels: Tensor, question: str
) -> tuple[Tensor, Tensor | None]:
    """The top answer's patch relevance `[h*w]` and question-token relevance `[L]` (None for a
    method that has none)."""
    result = (stack if stack.runs(method) else layer).explain(
        pixels, [question], top_k=1, method=method
    )
    text = None if result.question_relevance is None else result.question_relevance[0, 0]
    return result.maps.raw[0, 0].flatten(), text


@torch.no_grad()
def _accuracy(
    adapter: torch.nn.Module,
    pixels: Tensor,
    tokens: dict[str, Tensor],
    item: VQAItem,
    *,
    patch_keep: Tensor | None = None,
    text_keep: Tensor | None = None,
) -> Tensor:
    """The VQA accuracy of the model's answer at each removal step (one row per step)."""
    keep = patch_keep if patch_keep is not None else text_keep
    rows = keep.shape[0]
    inputs = {key: value.expand(rows, -1) for key, value in tokens.items()}
    if patch_keep is not None:
        inputs["patch_keep"] = patch_keep.to(pixels.device)
    else:
        inputs["attention_mask"] = inputs["attention_mask"] * text_keep.long()
    logits = adapter(pixels.expand(rows, -1, -1, -1), inputs)
    answers = [adapter.answers[i] for i in logits.argmax(dim=1).tolist()]
    return torch.tensor([vqa_accuracy(answer, list(item.answers)) for answer in answers])
