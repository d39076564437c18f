"""ViLT as an mmcam VQA model: its classifier's answer logits, Grad-CAM on its patch tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.explainers.attention_stack import AttentionLayout, VQAStackExplainer
from mmcam.explainers.hf.adapters import (
    PatchGrid,
    VQAImages,
    layer_index,
)
from mmcam.explainers.vqa import VQAExplanation

__all__ = ["ViltVQA"]


class ViltVQA(VQAImages):
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
        index = layer_index(layer, count, "encoder layer")
        if index == count - 1:
            raise ValueError(
                "the last ViLT layer's patch tokens do not reach the classifier (it reads only "
                "the first text token); explain an earlier layer, e.g. layer=-2"
            )
        self.layer = f"model.vilt.encoder.layer.{index}"
        self._patches = PatchGrid(0, 0)  # the layout of the latest forward pass

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
        the layers after it take their batch size from the hidden states they receive. An
        optional `patch_keep` `[R, h*w]` (0/1, row-major patches) in `questions` leaves the 0
        patches out of every attention, as if removed (token perturbation); the question's
        `attention_mask` does the same for its tokens.
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
        keep = questions.get("patch_keep")
        if keep is not None:  # the class token stays
            keep = torch.cat([keep.new_ones(keep.shape[0], 1), keep], dim=1)[::step]
            image_mask = image_mask * keep.to(image_mask.dtype)
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

    def _attention(self, images: Tensor, question: str, top_k: int, method: str) -> VQAExplanation:
        explainer = VQAStackExplainer(self, self.attention_layout(), self.to_grid)
        return explainer.explain(images, [question], top_k=top_k, method=method)

    def attention_layout(self) -> AttentionLayout:
        """Where the attention probabilities pass (eager attention's dropouts): the one encoder
        over the question tokens, the image class token and the patches; the embeddings start
        the explained stack, and answers are read at the first token (the pooler's)."""
        count = self.model.config.num_hidden_layers
        return AttentionLayout(
            entry="model.vilt.embeddings",
            text=tuple(
                f"model.vilt.encoder.layer.{i}.attention.attention.dropout" for i in range(count)
            ),
        )

    def to_grid(self, tokens: Tensor) -> Tensor:
        """The explained layer's tokens `[N, T, D]` as `[N, D, h, w]`, in the patch grid of the
        latest forward pass, padding patches zeroed."""
        return self._patches(tokens)
