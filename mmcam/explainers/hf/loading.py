"""Hugging Face vision-language models as mmcam captioners and VQA models: BLIP and ViLT.

The adapters satisfy `mmcam.protocols.CaptionModel` / `VQAModel`, so the ordinary
`CaptionExplainer` / `VQAExplainer` explain them. Each adapter also bundles what a script or
demo needs: the explained layer's dotted name (`layer`), the reshape of its patch tokens to the
patch grid (`to_grid`), the model's own processor (`preprocess`), and `explain_image`, which
takes a PIL image and text and returns maps in the original image's pixels::

    captioner = load_hf_captioner("Salesforce/blip-image-captioning-base")
    result = captioner.explain_image(Image.open("cat.jpg"))          # Grad-CAM per word
    result = captioner.explain_image(image, method="cross-attention")  # ALBEF/BLIP method

Two methods. Grad-CAM on a vision layer: its patch tokens (class token dropped) reshaped to the
patch grid, whose shape comes from the config (BLIP) or the padded input (ViLT). And the
gradient-weighted cross-attention of a text layer (`mmcam.cross_attention`), for models whose
text attends to image patches (BLIP; ViLT is single-stream and has none).

Targets. BLIP captioning: the caption's summed log-probability and each word's. ViLT VQA: the
classifier's answer logit (answers from `config.id2label`). BLIP VQA generates its answer with a
text decoder, so its answer score is the log-probability of a candidate answer (BOS, answer
tokens, SEP) given image and question, over an answer list the user provides; the softmax over
that list is the answer's probability among the candidates (BLIP's own "rank" inference mode).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.captioning import CaptionExplainer, CaptionExplanation
from mmcam.cross_attention import METHOD as CROSS_ATTENTION
from mmcam.cross_attention import explain_caption_attention, explain_vqa_attention
from mmcam.explanation import Explanation
from mmcam.methods import GRADIENT_METHODS
from mmcam.targets import token_logprobs
from mmcam.vqa import VQAExplainer, VQAExplanation

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


class _HFAdapter(nn.Module):
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


class _VQAImages(_HFAdapter):
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

        `method`: gradcam, gradcam++, counterfactual, hirescam (on `layer`), or cross-attention
        (BLIP).
        """
        processed = self.preprocess(image)
        images = processed.pixel_values
        if method == CROSS_ATTENTION:
            result = self._cross_attention(images, question, top_k)
        else:
            explainer = VQAExplainer(self, self.layer, to_grid=self.to_grid)
            result = explainer.explain(
                images, [question], top_k=top_k, method=method, counterfactual=counterfactual
            )
        return _vqa_in_original_pixels(result, processed)

    def _cross_attention(self, images: Tensor, question: str, top_k: int) -> VQAExplanation:
        raise NotImplementedError


def _layer_index(index: int, count: int, what: str) -> int:
    if not -count <= index < count:
        raise ValueError(f"{what} index {index} out of range: the model has {count} layers")
    return index % count


class _BlipLayers(_HFAdapter):
    """Where BLIP adapters are explained: a vision layer and a text layer's cross-attention."""

    def _locate(self, layer: int, attention_layer: int, text_encoder: str) -> None:
        text, vision = self.model.config.text_config, self.model.config.vision_config
        index = _layer_index(layer, vision.num_hidden_layers, "vision layer")
        self.layer = f"model.vision_model.encoder.layers.{index}"
        index = _layer_index(attention_layer, text.num_hidden_layers, "text layer")
        self.attention_layer = (
            f"model.{text_encoder}.encoder.layer.{index}.crossattention.self.dropout"
        )
        side = vision.image_size // vision.patch_size
        self.grid = (side, side)
        self.to_grid = PatchGrid(side, side)


class BlipCaptioner(_BlipLayers):
    """`BlipForConditionalGeneration` as a `CaptionModel`.

    `layer` is the explained vision layer (its index among `vision_model.encoder.layers`, last
    by default); `attention_layer` the text decoder layer whose cross-attention the
    "cross-attention" method reads. Captions are token ids without BOS ([DEC]) and EOS ([SEP]).
    """

    def __init__(
        self, model: nn.Module, processor: Any, *, layer: int = -1, attention_layer: int = -1
    ) -> None:
        super().__init__(model, processor)
        text = model.config.text_config
        self.bos_index = int(text.bos_token_id)
        self.eos_index = int(text.sep_token_id)
        self.pad_index = int(text.pad_token_id)
        self._locate(layer, attention_layer, "text_decoder.bert")

    def encode(self, images: Tensor) -> Tensor:
        """The vision encoder's tokens `[B, 1 + h*w, D]` (the class token first)."""
        return self.model.vision_model(pixel_values=images).last_hidden_state

    def decode_logits(self, features: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Teacher-forced logits `[B, L, V]`; the causal decoder ignores `lengths`."""
        image_mask = torch.ones(features.shape[:2], dtype=torch.long, device=features.device)
        output = self.model.text_decoder(
            input_ids=tokens,
            encoder_hidden_states=features,
            encoder_attention_mask=image_mask,
            use_cache=False,
        )
        return output.logits

    def generate(self, images: Tensor, max_length: int = 20, beam_size: int = 1) -> list[list[int]]:
        """Greedy (or beam) captions of at most `max_length` word pieces."""
        output = self.model.generate(
            pixel_values=images,
            max_new_tokens=max_length + 1,
            min_new_tokens=1,
            num_beams=beam_size,
            do_sample=False,
        )
        captions = []
        for row in output[:, 1:].tolist():  # drop BOS
            words = []
            for token in row:
                if token in (self.eos_index, self.pad_index):
                    break
                words.append(token)
            captions.append(words[:max_length])
        return captions

    def caption_ids(self, caption: str) -> list[int]:
        """A caption's text as token ids, without special tokens."""
        return self.tokenizer(caption, add_special_tokens=False)["input_ids"]

    def explain_image(
        self,
        image: Any,
        caption: str | None = None,
        *,
        method: str = "gradcam",
        max_length: int = 20,
        beam_size: int = 1,
    ) -> CaptionExplanation:
        """Maps of each word of `caption` (generated when None) in the original image's pixels.

        `method`: gradcam, gradcam++, counterfactual, hirescam (on `layer`), or cross-attention (on
        `attention_layer`).
        """
        processed = self.preprocess(image)
        images = processed.pixel_values
        captions = None if caption is None else [self.caption_ids(caption)]
        if method == CROSS_ATTENTION:
            if captions is None:
                captions = CaptionExplainer(self, self.layer).generate(
                    images, max_length, beam_size
                )
            result = explain_caption_attention(
                self, images, captions, self.attention_layer, self.grid
            )
        else:
            explainer = CaptionExplainer(self, self.layer, to_grid=self.to_grid)
            result = explainer.explain(
                images, captions, method=method, max_length=max_length, beam_size=beam_size
            )
        result.words = original_pixels(result.words, processed)
        result.caption = original_pixels(result.caption, processed)
        return result


class BlipVQA(_BlipLayers, _VQAImages):
    """`BlipForQuestionAnswering` as a `VQAModel`: answer score = log p(answer | image, question).

    BLIP writes its answer with a text decoder, so the "logit" of each of `answers` is the
    decoder's log-probability of that answer's tokens (then SEP); `layer` is the explained
    vision layer, `attention_layer` the question encoder layer whose cross-attention to the
    image the "cross-attention" method reads.
    """

    def __init__(
        self,
        model: nn.Module,
        processor: Any,
        answers: Sequence[str],
        *,
        layer: int = -1,
        attention_layer: int = -1,
    ) -> None:
        super().__init__(model, processor)
        if not answers:
            raise ValueError("BLIP VQA scores a list of candidate answers: pass answers=[...]")
        self.answers = list(answers)
        text = model.config.text_config
        self._locate(layer, attention_layer, "text_encoder")
        encoded = self.tokenizer(self.answers, padding=True, return_tensors="pt")
        answer_ids = encoded["input_ids"].clone()
        answer_ids[:, 0] = text.bos_token_id  # the decoder starts from [DEC], as in generate()
        self.answer_ids = answer_ids  # [A, La]: BOS, answer pieces, SEP, padding
        self.answer_mask = encoded["attention_mask"]
        self.answer_lengths = self.answer_mask.sum(dim=1) - 1  # scored tokens: pieces + SEP

    def question_tokens(self, questions: Sequence[str]) -> Tensor:
        """`[B, L]` bool: the question tokens the cross-attention map averages over (no padding,
        no special tokens), aligned with `tokenize(questions)`."""
        encoded = self.tokenize(questions)
        special = torch.tensor(self.tokenizer.all_special_ids)
        ids = encoded["input_ids"]
        return encoded["attention_mask"].bool() & ~torch.isin(ids, special)

    def forward(self, images: Tensor, questions: Mapping[str, Tensor]) -> Tensor:
        """Answer log-probabilities `[R, A]` for R question rows (R a multiple of the images)."""
        ids, mask = questions["input_ids"], questions["attention_mask"]
        image_embeds = self.model.vision_model(pixel_values=images).last_hidden_state
        if image_embeds.shape[0] != ids.shape[0]:  # the image side was not replicated
            image_embeds = image_embeds.repeat_interleave(ids.shape[0] // images.shape[0], dim=0)
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=ids.device)
        question = self.model.text_encoder(
            input_ids=ids,
            attention_mask=mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask,
        ).last_hidden_state  # [R, L, D]
        count, rows = len(self.answers), ids.shape[0]
        answer_ids = self.answer_ids.to(ids.device).repeat(rows, 1)  # [R*A, La]
        lengths = self.answer_lengths.to(ids.device).repeat(rows)
        logits = self.model.text_decoder(
            input_ids=answer_ids,
            attention_mask=self.answer_mask.to(ids.device).repeat(rows, 1),
            encoder_hidden_states=question.repeat_interleave(count, dim=0),
            encoder_attention_mask=mask.repeat_interleave(count, dim=0),
            use_cache=False,
        ).logits
        return token_logprobs(logits, answer_ids, lengths).sum(dim=1).view(rows, count)

    def _cross_attention(self, images: Tensor, question: str, top_k: int) -> VQAExplanation:
        return explain_vqa_attention(
            self,
            images,
            [question],
            self.attention_layer,
            self.grid,
            self.question_tokens([question]),
            top_k=top_k,
        )


class ViltVQA(_VQAImages):
    """`ViltForQuestionAnswering` as a `VQAModel`: answer logits from its classifier.

    ViLT is single-stream: the question tokens, an image class token and the patch tokens go
    through one encoder, and `layer` (an encoder layer, the second-to-last by default) is
    explained at its patch tokens. ViLT samples patches at random when an image has more than
    `max_image_length`; here every patch is kept, in grid order, so runs are deterministic and
    the tokens reshape to the grid of the (padded) input. The grid and the padding of the most
    recent forward pass are what `to_grid` reads. Padding needs a `pixel_mask` `[R, H, W]` in
    the question input (rows aligned with the questions); without one, no pixel is padding.
    """

    def __init__(self, model: nn.Module, processor: Any, *, layer: int = -2) -> None:
        super().__init__(model, processor)
        config = model.config
        self.answers = [config.id2label[i] for i in range(config.num_labels)]
        count = config.num_hidden_layers
        index = _layer_index(layer, count, "encoder layer")
        if index == count - 1:
            raise ValueError(
                "the last ViLT layer's patch tokens do not reach the classifier (it reads only "
                "the first text token); explain an earlier layer, e.g. layer=-2"
            )
        self.layer = f"model.vilt.encoder.layer.{index}"
        self._patches = PatchGrid(0, 0)  # the layout of the latest forward pass
        self.attention_layer = None  # single-stream: no cross-attention

    def tokenize(self, questions: Sequence[str]) -> dict[str, Tensor]:
        encoded = self.tokenizer(
            list(questions),
            padding=True,
            truncation=True,
            max_length=self.model.config.max_position_embeddings,
            return_tensors="pt",
        )
        return {key: encoded[key] for key in ("input_ids", "attention_mask")}

    def forward(self, images: Tensor, questions: Mapping[str, Tensor]) -> Tensor:
        """Answer logits `[R, A]`; R question rows, a multiple of the B images.

        Everything up to the explained layer runs on one row per image (question rows b*R/B);
        the layers after it take their batch size from the hidden states they receive.
        """
        ids, mask = questions["input_ids"], questions["attention_mask"]
        step = ids.shape[0] // images.shape[0]
        ids, mask = ids[::step], mask[::step]
        pixel_mask = questions.get("pixel_mask")
        if pixel_mask is None:
            pixel_mask = torch.ones(images.shape[0], *images.shape[-2:], device=images.device)
        else:
            pixel_mask = pixel_mask[::step]
        vilt = self.model.vilt
        image_embeds, image_mask = self._patch_tokens(images, pixel_mask)
        hidden, token_mask = vilt.embeddings(
            ids, mask, torch.zeros_like(ids), None, image_mask, None, image_embeds
        )
        additive = (1.0 - token_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(
            hidden.dtype
        ).min  # [B, 1, 1, T]
        for layer in vilt.encoder.layer:
            rows = additive.repeat_interleave(hidden.shape[0] // additive.shape[0], dim=0)
            hidden = layer(hidden, rows)[0]
        pooled = vilt.pooler(vilt.layernorm(hidden))
        return self.model.classifier(pooled)

    def _patch_tokens(self, images: Tensor, pixel_mask: Tensor) -> tuple[Tensor, Tensor]:
        """ViLT's image tokens with every patch kept, laid out as the full padded grid:
        `[B, 1 + h*w, D]` (class token first) and their mask `[B, 1 + h*w]`."""
        embeddings = self.model.vilt.embeddings
        with torch.random.fork_rng(devices=[]):  # ViLT shuffles patches; leave the RNG as found
            tokens, token_mask, (where, (height, width)) = embeddings.visual_embed(
                images, pixel_mask, max_image_length=-1
            )
        batch, dim = tokens.shape[0], tokens.shape[-1]
        valid = token_mask[:, 1:].bool()  # [B, n]: sampled padding patches are dropped
        cell = where[..., 0] * width + where[..., 1]  # [B, n] row-major grid position
        rows = torch.arange(batch, device=tokens.device)[:, None].expand_as(cell)
        grid = tokens.new_zeros(batch, height * width, dim)
        grid[rows[valid], cell[valid]] = tokens[:, 1:][valid]
        cells = token_mask.new_zeros(batch, height * width)
        cells[rows[valid], cell[valid]] = 1
        self._patches = PatchGrid(int(height), int(width), cells)
        image_embeds = torch.cat([tokens[:, :1], grid], dim=1)
        image_mask = torch.cat([token_mask[:, :1], cells], dim=1)
        return image_embeds, image_mask

    def _cross_attention(self, images: Tensor, question: str, top_k: int) -> VQAExplanation:
        raise ValueError(
            "ViLT has no cross-attention (text and image share one encoder); use one of "
            f"{', '.join(GRADIENT_METHODS)}"
        )

    def to_grid(self, tokens: Tensor) -> Tensor:
        """The explained layer's tokens `[N, T, D]` as `[N, D, h, w]`, in the patch grid of the
        latest forward pass, padding patches zeroed."""
        return self._patches(tokens)


def _vqa_in_original_pixels(result: VQAExplanation, processed: ProcessedImages) -> VQAExplanation:
    result.maps = original_pixels(result.maps, processed)
    if result.counterfactual is not None:
        result.counterfactual = original_pixels(result.counterfactual, processed)
    return result


def load_hf_captioner(
    name_or_path: str, *, device: str | torch.device = "cpu", layer: int = -1, **kwargs: Any
) -> BlipCaptioner:
    """A BLIP captioner from a hub name or a local directory (`from_pretrained`), with its
    processor. Extra keyword arguments go to `from_pretrained` (e.g. `local_files_only=True`)."""
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
