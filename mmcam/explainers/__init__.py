"""Explainers that face the models: CaptionExplainer, VQAExplainer, cross-attention maps, and
(in `mmcam.explainers.hf`) the Hugging Face adapters. Imports core and methods."""

from mmcam.explainers.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explainers.vqa import VQAExplainer, VQAExplanation

__all__ = ["CaptionExplainer", "CaptionExplanation", "VQAExplainer", "VQAExplanation"]
