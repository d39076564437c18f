"""The reference networks (the attention captioner, Show and Tell, the VQA model, a small ViLT
and a small BLIP trained from scratch) and their training loop. Imports core, data and
evaluation."""

from mmcam.zoo.bundled_models import BUNDLED_MODELS, bundled
from mmcam.zoo.captioner import DEFAULT_CAPTIONER, Captioner, load_captioner
from mmcam.zoo.vqa_model import DEFAULT_VQA, VQANet, load_vqa_model

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_CAPTIONER",
    "DEFAULT_VQA",
    "Captioner",
    "VQANet",
    "bundled",
    "load_captioner",
    "load_vqa_model",
]
