"""What every Hugging Face adapter shares: preprocessing with the model's own processor,
the patch grid of a vision layer, maps brought back to the original image's pixels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.explanation import Explanation
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer, VQAExplanation
from mmcam.methods import registry

__all__ = [
    "PatchGrid",
    "PatchTokenCaptionExplainer",
    "PatchTokenVQAExplainer",
    "ProcessedImages",
    "original_pixels",
]


class PatchTokenCaptionExplainer(CaptionExplainer):
    """The caption explainer on a transformer's patch tokens (a `to_grid` such as `PatchGrid`):
    the gradient and perturbation methods; the ReLU rules need a convolutional network."""

    explainer_id = "hf_captions"


class PatchTokenVQAExplainer(VQAExplainer):
    """The VQA explainer on a transformer's patch tokens (see `PatchTokenCaptionExplainer`)."""

    explainer_id = "hf_vqa"


class PatchGrid:
    """A transformer layer's tokens `[N, T, D]` as a patch grid `[N, D, h, w]`.

    The last h*w tokens are the patches in row-major order; the tokens before them (text, class
    token) are dropped. `cells` `[B, h*w]` (0/1), when given, zeroes patches that hold padding;
    N may be a multiple of B (replicated rows).
    """

    def __init__(self, height: int, width: int, cells: Tensor | None = None) -> None:
        self.height, self.width, self.cells = height, width, cells

    def __call__(self, tokens: Tensor) -> Tensor:
        if isinstance(tokens, tuple | list):
            tokens = tokens[0]
        patches = self.height * self.width
        if tokens.dim() != 3 or tokens.shape[1] < patches:
            raise ValueError(
                f"expected tokens [N, T >= {patches}, D] for a {self.height}x{self.width} patch "
                f"grid, got {tuple(tokens.shape)}"
            )
        grid = tokens[:, -patches:].transpose(1, 2)  # [N, D, h*w]
        if self.cells is not None:
            cells = self.cells.to(grid.dtype)
            grid = grid * cells.repeat_interleave(grid.shape[0] // cells.shape[0], dim=0)[:, None]
        return grid.reshape(tokens.shape[0], -1, self.height, self.width)


@dataclass
class ProcessedImages:
    """Images run through a model's processor, and what maps them back to the originals."""

    pixel_values: Tensor  # [B, 3, H, W] as the model sees them (resized, padded)
    pixel_mask: Tensor  # [B, H, W] 1 on image pixels, 0 on padding
    original_sizes: list[tuple[int, int]]  # (height, width) of each original image


def original_pixels(
    explanation: Explanation, processed: ProcessedImages, index: int = 0
) -> Explanation:
    """The maps of image `index` in its original pixels (leading batch dimension 1).

    The raw patch-grid map is cropped to the patches that hold the image (the processor may
    pad) and bilinearly resized to the original (height, width); the crop is kept as `raw`.
    """
    raw = explanation.raw[index : index + 1]
    height, width = processed.pixel_values.shape[-2:]
    mask = processed.pixel_mask[index]
    valid_h = int(mask.any(dim=1).sum())
    valid_w = int(mask.any(dim=0).sum())
    rows = max(1, round(raw.shape[-2] * valid_h / height))
    cols = max(1, round(raw.shape[-1] * valid_w / width))
    labels = explanation.labels[index : index + 1] if explanation.labels else None
    return Explanation.from_raw(
        raw[..., :rows, :cols],
        explanation.scores[index : index + 1],
        processed.original_sizes[index],
        explanation.method,
        labels,
    )


class HFAdapter(nn.Module):
    """What BLIP and ViLT adapters share: the model, its processor, preprocessing, text."""

    def __init__(self, model: nn.Module, processor: Any) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: Any) -> ProcessedImages:
        """PIL image(s) to the model's input with its own image processor."""
        batch = list(images) if isinstance(images, list | tuple) else [images]
        sizes = [(image.height, image.width) for image in batch]
        inputs = self.processor.image_processor(images=batch, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        mask = inputs.get("pixel_mask")
        if mask is None:
            mask = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long)
        return ProcessedImages(pixels, mask.to(self.device), sizes)

    def tokenize(self, questions: Sequence[str]) -> dict[str, Tensor]:
        """Questions to padded `input_ids` and `attention_mask` `[B, L]`."""
        encoded = self.tokenizer(
            list(questions), padding=True, truncation=True, return_tensors="pt"
        )
        return {key: encoded[key] for key in ("input_ids", "attention_mask")}

    def unknown_words(self, question: str) -> list[str]:
        """Words of `question` the tokenizer can only spell as its unknown token."""
        unknown = self.tokenizer.unk_token
        return [w for w in re.findall(r"\w+", question) if unknown in self.tokenizer.tokenize(w)]

    def words(self, token_ids: Sequence[int]) -> list[str]:
        """The tokenizer's spelling of each id (word pieces keep their `##`)."""
        return self.tokenizer.convert_ids_to_tokens(list(token_ids))


class VQAImages(HFAdapter):
    """The PIL path shared by the VQA adapters."""

    def explain_image(
        self,
        image: Any,
        question: str,
        *,
        top_k: int = 3,
        method: str = "gradcam",
        counterfactual: bool = False,
    ) -> VQAExplanation:
        """The top-k answers and their maps in the original image's pixels.

        `method`: a gradient or perturbation method (on `layer`), or an attention method
        (`_attention`: BLIP's cross-attention, ViLT's whole attention stack).
        """
        processed = self.preprocess(image)
        images = processed.pixel_values
        record = registry.get(method)
        if record.kind == registry.ATTENTION:
            result = self._attention(images, question, top_k, record.id)
        else:
            explainer = PatchTokenVQAExplainer(self, self.layer, to_grid=self.to_grid)
            result = explainer.explain(
                images, [question], top_k=top_k, method=record.id, counterfactual=counterfactual
            )
        return vqa_in_original_pixels(result, processed)

    def _attention(self, images: Tensor, question: str, top_k: int, method: str) -> VQAExplanation:
        raise NotImplementedError


def layer_index(index: int, count: int, what: str) -> int:
    if not -count <= index < count:
        raise ValueError(f"{what} index {index} out of range: the model has {count} layers")
    return index % count


class BlipLayers(HFAdapter):
    """Where BLIP adapters are explained: a vision layer and a text layer's cross-attention."""

    def _locate(self, layer: int, attention_layer: int, text_encoder: str) -> None:
        text, vision = self.model.config.text_config, self.model.config.vision_config
        index = layer_index(layer, vision.num_hidden_layers, "vision layer")
        self.layer = f"model.vision_model.encoder.layers.{index}"
        index = layer_index(attention_layer, text.num_hidden_layers, "text layer")
        self.attention_index = index
        self.attention_layer = (
            f"model.{text_encoder}.encoder.layer.{index}.crossattention.self.dropout"
        )
        side = vision.image_size // vision.patch_size
        self.grid = (side, side)
        self.to_grid = PatchGrid(side, side)


def vqa_in_original_pixels(result: VQAExplanation, processed: ProcessedImages) -> VQAExplanation:
    result.maps = original_pixels(result.maps, processed)
    if result.counterfactual is not None:
        result.counterfactual = original_pixels(result.counterfactual, processed)
    return result
