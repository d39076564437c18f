"""Hugging Face vision-language models as mmcam captioners and VQA models: BLIP and ViLT.

The adapters satisfy `mmcam.core.protocols.CaptionModel` / `VQAModel`, so the ordinary
`CaptionExplainer` / `VQAExplainer` explain them. Each adapter also bundles what a script or
demo needs: the explained layer's dotted name (`layer`), the reshape of its patch tokens to the
patch grid (`to_grid`), the model's own processor (`preprocess`), and `explain_image`, which
takes a PIL image and text and returns maps in the original image's pixels::

    captioner = load_hf_captioner("Salesforce/blip-image-captioning-base")
    result = captioner.explain_image(Image.open("cat.jpg"))          # Grad-CAM per word
    result = captioner.explain_image(image, method="relevance")  # Chefer et al. 2021

Two families of methods. The gradient and perturbation methods on a vision layer: its patch
tokens (class token dropped) reshaped to the patch grid, whose shape comes from the config
(BLIP) or the padded input (ViLT). And the attention methods (raw attention, rollout,
gradient-weighted attention, relevance) over every attention layer
(`mmcam.explainers.attention_stack`, eager attention): BLIP captioning's vision encoder and
decoder, ViLT's single stream (whose answers also get their question tokens' relevance); BLIP
VQA offers gradient-weighted cross-attention of one question-encoder layer
(`mmcam.explainers.cross_attention`).

Targets. BLIP captioning: the caption's summed log-probability and each word's. ViLT VQA: the
classifier's answer logit (answers from `config.id2label`). BLIP VQA generates its answer with a
text decoder, so its answer score is the log-probability of a candidate answer (BOS, answer
tokens, SEP) given image and question, over an answer list the user provides; the softmax over
that list is the answer's probability among the candidates (BLIP's own "rank" inference mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmcam.core.extras import require
from mmcam.explainers.hf.blip import BlipCaptioner, BlipVQA
from mmcam.explainers.hf.vilt import ViltVQA

__all__ = ["load_hf_captioner", "load_hf_vqa"]


def load_hf_captioner(
    name_or_path: str, *, device: str | torch.device = "cpu", layer: int = -1, **kwargs: Any
) -> BlipCaptioner:
    """A BLIP captioner from a hub name or a local directory (`from_pretrained`), with its
    processor. Extra keyword arguments go to `from_pretrained` (e.g. `local_files_only=True`)."""
    require("transformers", "hf", "The Hugging Face adapters")
    from transformers import AutoConfig, AutoProcessor, BlipForConditionalGeneration

    config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    if config.model_type != "blip":
        raise ValueError(
            f"{name_or_path} is a {config.model_type!r} model; captioning supports BLIP "
            "(e.g. Salesforce/blip-image-captioning-base)"
        )
    model = BlipForConditionalGeneration.from_pretrained(name_or_path, **kwargs)
    processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
    return BlipCaptioner(model.to(device).eval(), processor, layer=layer)


def load_hf_vqa(
    name_or_path: str,
    *,
    answers: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    layer: int | None = None,
    **kwargs: Any,
) -> BlipVQA | ViltVQA:
    """A ViLT or BLIP VQA model from a hub name or a local directory, with its processor.

    ViLT answers from its classifier's labels; BLIP needs `answers`, the candidate list it
    scores. `layer` defaults to ViLT's second-to-last and BLIP's last vision layer.
    """
    require("transformers", "hf", "The Hugging Face adapters")
    from transformers import (
        AutoConfig,
        AutoProcessor,
        BlipForQuestionAnswering,
        ViltForQuestionAnswering,
    )

    config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
    if config.model_type == "vilt":
        model = ViltForQuestionAnswering.from_pretrained(name_or_path, **kwargs)
        return ViltVQA(model.to(device).eval(), processor, layer=-2 if layer is None else layer)
    if config.model_type == "blip":
        if not answers:
            raise ValueError("BLIP VQA scores candidate answers: pass answers=[...]")
        model = BlipForQuestionAnswering.from_pretrained(name_or_path, **kwargs)
        return BlipVQA(
            model.to(device).eval(), processor, answers, layer=-1 if layer is None else layer
        )
    raise ValueError(
        f"{name_or_path} is a {config.model_type!r} model; VQA supports ViLT "
        "(dandelin/vilt-b32-finetuned-vqa) and BLIP (Salesforce/blip-vqa-base)"
    )
