"""BLIP as an mmcam captioner and VQA model (VQA scores a list of candidate answers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.targets import token_logprobs
from mmcam.explainers.attention_stack import AttentionLayout, CaptionStackExplainer
from mmcam.explainers.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explainers.cross_attention import VQAAttentionExplainer
from mmcam.explainers.hf.adapters import (
    BlipLayers,
    PatchTokenCaptionExplainer,
    VQAImages,
    original_pixels,
)
from mmcam.explainers.vqa import VQAExplanation
from mmcam.methods import registry

__all__ = ["BlipCaptioner", "BlipVQA"]


class BlipCaptioner(BlipLayers):
    """`BlipForConditionalGeneration` as a `CaptionModel`.

    `layer` is the explained vision layer (its index among `vision_model.encoder.layers`, last
    by default); `attention_layer` the text decoder layer whose cross-attention the one-layer
    attention methods read (raw attention, attention_gradcam). Captions are token ids without
    BOS ([DEC]) and EOS ([SEP]).
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

    def encode(self, images: Tensor, patch_keep: Tensor | None = None) -> Tensor:
        """The vision encoder's tokens `[B, 1 + h*w, D]` (the class token first). With
        `patch_keep` `[h*w]` (0/1, row-major), the 0 patches are removed before the encoder (the
        class token and the kept patches, at their positions, go through it): `[B, 1 + kept, D]`,
        for token perturbation."""
        vision = self.model.vision_model
        if patch_keep is None:
            return vision(pixel_values=images).last_hidden_state
        tokens = vision.embeddings(images)  # [B, 1 + h*w, D], positions added
        kept = torch.nonzero(patch_keep.flatten().to(tokens.device)).flatten() + 1
        order = torch.cat([kept.new_zeros(1), kept])
        hidden = vision.encoder(inputs_embeds=tokens[:, order]).last_hidden_state
        return vision.post_layernorm(hidden)

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

    def attention_layout(self) -> AttentionLayout:
        """Where the attention probabilities pass (eager attention's dropouts): the vision
        encoder's self-attention, then each decoder layer's self- and cross-attention; the vision
        embeddings start the explained stack."""
        vision = self.model.config.vision_config.num_hidden_layers
        text = self.model.config.text_config.num_hidden_layers
        decoder = "model.text_decoder.bert.encoder.layer"
        return AttentionLayout(
            entry="model.vision_model.embeddings",
            image=tuple(
                f"model.vision_model.encoder.layers.{i}.self_attn.dropout" for i in range(vision)
            ),
            text=tuple(f"{decoder}.{i}.attention.self.dropout" for i in range(text)),
            cross=tuple(f"{decoder}.{i}.crossattention.self.dropout" for i in range(text)),
            layer=self.attention_index,
        )

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

        `method`: a gradient or perturbation method (on `layer`), or an attention method (every
        layer's attention, `attention_layout`; the one-layer methods read `attention_layer`).
        """
        processed = self.preprocess(image)
        images = processed.pixel_values
        captions = None if caption is None else [self.caption_ids(caption)]
        record = registry.get(method)
        if record.kind == registry.ATTENTION:
            if captions is None:
                captions = CaptionExplainer(self, self.layer).generate(
                    images, max_length, beam_size
                )
            stack = CaptionStackExplainer(self, self.attention_layout(), self.to_grid)
            result = stack.explain(images, captions, method=record.id)
        else:
            explainer = PatchTokenCaptionExplainer(self, self.layer, to_grid=self.to_grid)
            result = explainer.explain(
                images, captions, method=record.id, max_length=max_length, beam_size=beam_size
            )
        result.words = original_pixels(result.words, processed)
        result.caption = original_pixels(result.caption, processed)
        return result


class BlipVQA(BlipLayers, VQAImages):
    """`BlipForQuestionAnswering` as a `VQAModel`: answer score = log p(answer | image, question).

    BLIP writes its answer with a text decoder, so the "logit" of each of `answers` is the
    decoder's log-probability of that answer's tokens (then SEP); `layer` is the explained
    vision layer, `attention_layer` the question encoder layer whose cross-attention to the
    image the "attention_gradcam" method reads (the other attention methods are not offered for
    BLIP VQA: its answer passes a question encoder and an answer decoder).
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

    def _attention(self, images: Tensor, question: str, top_k: int, method: str) -> VQAExplanation:
        explainer = VQAAttentionExplainer(self, self.attention_layer, self.grid)
        queries = self.question_tokens([question])
        return explainer.explain(images, [question], queries, top_k=top_k, method=method)
