"""Hugging Face vision-language models (BLIP, ViLT) as mmcam captioners and VQA models; see
`mmcam.explainers.hf.loading`. Imports core, methods and the explainers."""

from mmcam.explainers.cross_attention import METHOD as CROSS_ATTENTION
from mmcam.explainers.hf.adapters import PatchGrid, ProcessedImages, original_pixels
from mmcam.explainers.hf.blip import BlipCaptioner, BlipVQA
from mmcam.explainers.hf.loading import load_hf_captioner, load_hf_vqa
from mmcam.explainers.hf.vilt import ViltVQA

__all__ = [
    "CROSS_ATTENTION",
    "BlipCaptioner",
    "BlipVQA",
    "PatchGrid",
    "ProcessedImages",
    "ViltVQA",
    "load_hf_captioner",
    "load_hf_vqa",
    "original_pixels",
]
