"""The bundled reference models by name: `bundled("captioner")`, `bundled("vqa")`, and
`bundled("vqa_random_labels")` (the VQA model trained on shuffled answers, the sanity checks'
data-randomisation control). Each is a checkpoint trained here on the shapes data (model cards in
`mmcam/bundled/*.md`); a checkpoint of your own loads by path with `load_captioner` /
`load_vqa_model`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcam.core.bundled import bundled_file
from mmcam.zoo.captioner import load_captioner
from mmcam.zoo.vqa_model import load_vqa_model

__all__ = ["BUNDLED_MODELS", "bundled"]

BUNDLED_MODELS: dict[str, Callable[..., nn.Module]] = {
    "captioner": load_captioner,
    "vqa": load_vqa_model,
    "vqa_random_labels": load_vqa_model,
}


def bundled(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """The bundled model `name`, in eval mode on `device`; a clear error naming the bundled
    models for any other name."""
    if name not in BUNDLED_MODELS:
        raise ValueError(
            f"no bundled model {name!r}; the bundled models are {', '.join(BUNDLED_MODELS)}"
        )
    return BUNDLED_MODELS[name](bundled_file(name), device)
