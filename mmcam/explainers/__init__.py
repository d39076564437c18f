"""Explainers that face the models: the explainer base (`Explainer`: registry lookup, model-state
guard, protocol check hook, dispatch by method kind), the public rows layer (`rows`: word
replicas, teacher forcing, repeated rows, device moves), CaptionExplainer, VQAExplainer, the
cross-attention and attention-stack explainers and (in `mmcam.explainers.hf`) the Hugging Face
adapters. Imports core and methods."""

from mmcam.explainers.attention_stack import (
    AttentionLayout,
    CaptionStackExplainer,
    VQAStackExplainer,
)
from mmcam.explainers.base import Explainer
from mmcam.explainers.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explainers.cross_attention import CaptionAttentionExplainer, VQAAttentionExplainer
from mmcam.explainers.vqa import VQAExplainer, VQAExplanation

__all__ = [
    "AttentionLayout",
    "CaptionAttentionExplainer",
    "CaptionExplainer",
    "CaptionExplanation",
    "CaptionStackExplainer",
    "Explainer",
    "VQAAttentionExplainer",
    "VQAExplainer",
    "VQAExplanation",
    "VQAStackExplainer",
]
