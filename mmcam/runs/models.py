"""The models a dataset run explains: the bundled reference models, a checkpoint of
theirs, or a Hugging Face model, with their layer and preprocessing; and the device."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from mmcam.core.tap import Grid, find_layer, layers
from mmcam.data.files import RefusedInput, file_digest
from mmcam.explainers.attention_stack import (
    AttentionLayout,
    CaptionStackExplainer,
    VQAStackExplainer,
)
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer

__all__ = [
    "ExplainedModel",
    "load_run_captioner",
    "load_run_vqa",
]


# ----------------------------------------------------------------------------- models


@dataclass
class ExplainedModel:
    """A model ready for a dataset run: the model (a `CaptionModel` or `VQAModel`), its
    explained layer and grid reshape, its preprocessing (PIL image -> input `[3, H, W]`,
    run in DataLoader workers), how a caption's token ids read as text, and whether the
    pixel-space methods apply (its network has ReLUs for their backward rule)."""

    model: nn.Module
    layer: str
    preprocess: Callable[[Image.Image], Tensor]
    name: str
    to_grid: Grid | None = None
    caption_text: Callable[[list[int]], str] | None = None
    pixel_space: bool = True
    source: dict = field(default_factory=dict)  # what the weights are: file hashes, hub revision
    attention: AttentionLayout | None = None  # a transformer's attention stack (attention methods)

    def __post_init__(self) -> None:
        for layer in layers(self.layer):  # an unknown name fails now, listing the valid ones
            try:
                find_layer(self.model, layer)
            except ValueError as error:
                raise RefusedInput(str(error)) from None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def caption_explainer(self, method: str) -> CaptionExplainer:
        """The explainer that runs `method`: the attention stack's for an attention method of a
        transformer, the explained layer's otherwise (which refuses a method it cannot run)."""
        if self._by_stack(method, CaptionStackExplainer):
            return CaptionStackExplainer(self.model, self.attention, self.to_grid)
        return CaptionExplainer(self.model, self.layer, to_grid=self.to_grid)

    def vqa_explainer(self, method: str) -> VQAExplainer | VQAStackExplainer:
        """As `caption_explainer`, for a VQA model."""
        if self._by_stack(method, VQAStackExplainer):
            return VQAStackExplainer(self.model, self.attention, self.to_grid)
        return VQAExplainer(self.model, self.layer, to_grid=self.to_grid)

    def _by_stack(self, method: str, stack: type) -> bool:
        return self.attention is not None and stack.runs(method)


class _HFImages:
    """A Hugging Face processor's image preprocessing, on the CPU (picklable for workers)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> Tensor:
        return self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][
            0
        ]


def load_run_captioner(
    checkpoint: str | Path | None = None,
    *,
    hf: str | None = None,
    device: str = "cpu",
    layer: str | None = None,
) -> ExplainedModel:
    """The bundled captioner (or the one in `checkpoint`), or with `hf` a BLIP captioner from
    a Hugging Face hub name or local folder; explained at `layer` (default: the model's own)."""
    if hf is not None:
        from mmcam.explainers.hf import load_hf_captioner

        adapter = load_hf_captioner(hf, device=device)

        def caption_text(ids: list[int]) -> str:
            return adapter.tokenizer.decode(ids, skip_special_tokens=True)

        return _hf_model(adapter, hf, layer, caption_text)
    from mmcam.zoo.captioner import DEFAULT_CAPTIONER, load_captioner, preprocess

    path = checkpoint or DEFAULT_CAPTIONER
    return _bundled_model(load_captioner(path, device), path, layer, preprocess)


def load_run_vqa(
    checkpoint: str | Path | None = None,
    *,
    hf: str | None = None,
    answers: Sequence[str] | None = None,
    device: str = "cpu",
    layer: str | None = None,
) -> ExplainedModel:
    """The bundled VQA model (or the one in `checkpoint`), or with `hf` a ViLT / BLIP VQA
    model from a Hugging Face hub name or local folder (BLIP scores the candidate `answers`);
    explained at `layer` (default: the model's own)."""
    if hf is not None:
        from mmcam.explainers.hf import load_hf_vqa

        return _hf_model(load_hf_vqa(hf, answers=answers, device=device), hf, layer)
    from mmcam.zoo.vqa_model import DEFAULT_VQA, load_vqa_model, preprocess

    path = checkpoint or DEFAULT_VQA
    return _bundled_model(load_vqa_model(path, device), path, layer, preprocess)


def _hf_model(
    adapter: nn.Module,
    hf: str,
    layer: str | None,
    caption_text: Callable[[list[int]], str] | None = None,
) -> ExplainedModel:
    """A Hugging Face adapter ready for a run: its own layer, processor and grid reshape, and
    its attention stack where it has one (BLIP captioning, ViLT); its transformer has GELUs, so
    no pixel-space rule."""
    stack = getattr(adapter, "attention_layout", None)  # the single-stack adapters have one
    return ExplainedModel(
        adapter,
        layer or adapter.layer,
        _HFImages(adapter.processor),
        f"hf:{hf}",
        adapter.to_grid,
        caption_text,
        pixel_space=False,
        source=hub_source(hf, adapter.model),
        attention=stack() if stack else None,
    )


def _bundled_model(
    model: nn.Module, path: str | Path, layer: str | None, preprocess: Callable
) -> ExplainedModel:
    """A reference model loaded from its checkpoint folder `path`, fingerprinted by its files."""
    return ExplainedModel(
        model, layer or model.explained_layer, preprocess, str(path), source=folder_source(path)
    )


def folder_source(folder: str | Path) -> dict:
    """A checkpoint folder as its files' content hashes (retraining in place changes them)."""
    files = sorted(path for path in Path(folder).iterdir() if path.is_file())
    return {"checkpoint": {path.name: file_digest(path) for path in files}}


def hub_source(name: str, model: nn.Module) -> dict:
    """A Hugging Face model as its hub name (or local folder) and revision (the commit hash
    transformers records; a local folder: its files' hashes)."""
    if Path(name).is_dir():
        return {"hf": name, **folder_source(name)}
    config = getattr(model, "config", None)
    return {"hf": name, "revision": getattr(config, "_commit_hash", None)}


def run_device(requested: str = "auto") -> str:
    """`requested`, or with "auto" this process's GPU (torchrun's LOCAL_RANK) or the CPU; a
    GPU becomes the current CUDA device."""
    device = requested
    if requested == "auto":
        rank = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda" and chosen.index is not None:  # NCCL's barrier uses the current
        torch.cuda.set_device(chosen)  # device: make it this rank's
    return device
