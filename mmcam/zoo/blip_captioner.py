"""A small BLIP captioner trained from scratch by the reference models' training loop.

The loop trains the Hugging Face adapter (`mmcam.explainers.hf.BlipCaptioner`: `encode`,
`decode_logits`, `generate`, `words`) around a `BlipForConditionalGeneration` built here
(`new_blip`); `CaptionTokens` reads the training captions into `[DEC] words [SEP]` ids with the
model's own tokenizer, for `CaptionDataset`. The processor comes from the training captions
(`mmcam.zoo.transformer_parts`) and gives the reference models' image input;
`transformer_parts.save_pretrained` writes the Hugging Face format, so the folder loads like any
hub checkpoint: `mmcam explain-captions --hf FOLDER`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mmcam.core.extras import require
from mmcam.data.images import IMAGE_SIZE
from mmcam.zoo.transformer_parts import IMAGE_SETTINGS, check_padding, word_tokenizer

__all__ = ["CaptionTokens", "blip_processor", "blip_vision", "new_blip"]

BOS = "[DEC]"  # BLIP's decoder start token; [SEP] ends a caption


def blip_processor(captions: Iterable[str], *, min_count: int = 1) -> Any:
    """A `BlipProcessor` for these captions: WordPiece over their words (seen `min_count`
    times) with BLIP's `[DEC]`, and the reference models' image preprocessing."""
    require("transformers", "hf", "Training a BLIP model")
    from transformers import BlipImageProcessor, BlipProcessor

    images = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, **IMAGE_SETTINGS)
    tokenizer = word_tokenizer(captions, min_count=min_count, extra=(BOS,))
    tokenizer.add_special_tokens({"bos_token": BOS})
    return BlipProcessor(image_processor=images, tokenizer=tokenizer)


def new_blip(
    processor: Any,
    *,
    hidden: int = 128,
    layers: int = 3,
    heads: int = 4,
    patch: int = 16,
    max_caption: int = 32,
) -> Any:
    """A randomly initialised `BlipForConditionalGeneration` of this size: a vision encoder and
    a text decoder of `layers` layers each, for `processor`'s tokenizer."""
    require("transformers", "hf", "Training a BLIP model")
    from transformers import BlipConfig, BlipForConditionalGeneration

    tokenizer = processor.tokenizer
    size = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
    )
    text = dict(
        size,
        vocab_size=len(tokenizer),
        max_position_embeddings=max_caption,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    vision = dict(size, image_size=IMAGE_SIZE, patch_size=patch)
    config = BlipConfig(text_config=text, vision_config=vision)
    check_padding(tokenizer)
    return BlipForConditionalGeneration(config)


def blip_vision(folder: str) -> dict[str, Any]:
    """The trained vision encoder's state dict of the BLIP captioner saved in `folder`."""
    require("transformers", "hf", "Reading a BLIP model")
    from transformers import BlipForConditionalGeneration

    return BlipForConditionalGeneration.from_pretrained(folder).vision_model.state_dict()


class CaptionTokens:
    """The tokenizer as the training data's vocabulary: `encode(caption, bos=, eos=)` gives
    `[DEC] words [SEP]` ids (cut to `limit` tokens); `len` is the vocabulary's size."""

    def __init__(self, tokenizer: Any, limit: int) -> None:
        self.tokenizer, self.limit = tokenizer, limit

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.limit - 2]
        first = [self.tokenizer.bos_token_id] if bos else []
        return first + ids + ([self.tokenizer.sep_token_id] if eos else [])

    def __len__(self) -> int:
        return len(self.tokenizer)
