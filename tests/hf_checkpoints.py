"""Tiny random BLIP captioning and ViLT VQA checkpoints, saved in the Hugging Face format
(model and processor) so a test can pass their folders to `--hf` like hub checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] a the red blue circle square star is what color [DEC]"
ANSWERS = ["red", "blue", "yes", "no"]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def save_tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """`folder/blip` (32 x 32 input, 4 x 4 patches) and `folder/vilt` (48 x 48 input, 16-pixel
    patches, the four `ANSWERS`), seeded."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        ViltConfig,
        ViltForQuestionAnswering,
        ViltImageProcessor,
        ViltProcessor,
    )

    (folder / "vocab.txt").write_text("\n".join(WORDS.split()) + "\n")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"), bos_token="[DEC]")
    size = len(WORDS.split())
    torch.manual_seed(0)
    text = dict(TINY, vocab_size=size, max_position_embeddings=32, bos_token_id=size - 1,
                pad_token_id=0, sep_token_id=3, eos_token_id=3)  # fmt: skip
    blip = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=dict(TINY, image_size=32, patch_size=8))
    )
    blip.save_pretrained(folder / "blip")
    images = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder / "blip")
    vilt = ViltForQuestionAnswering(
        ViltConfig(vocab_size=size, image_size=64, patch_size=16, max_position_embeddings=40,
                   num_labels=len(ANSWERS), id2label=dict(enumerate(ANSWERS)), **TINY)
    )  # fmt: skip
    vilt.save_pretrained(folder / "vilt")
    images = ViltImageProcessor(size={"shortest_edge": 48}, size_divisor=16)
    ViltProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder / "vilt")
    return {"blip": folder / "blip", "vilt": folder / "vilt"}
