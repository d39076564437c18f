"""A small ViLT VQA model trained from scratch by the reference models' training loop.

`TrainableVilt` wraps a `transformers.ViltForQuestionAnswering` and its processor in the shape
the loop (`mmcam.zoo.training`) expects of a VQA model: `vocab` (its `encode` reads a question
into token ids, so `VQADataset` reads the questions with the model's own tokenizer),
`question_logits` and `answers`. `transformer_parts.save_pretrained` writes the Hugging Face
format (model and processor), so the folder loads like any hub checkpoint:
`mmcam explain-vqa --hf FOLDER`, `load_hf_vqa(FOLDER)`.

The processor is built here, from the training questions (`mmcam.zoo.transformer_parts`): a BERT
WordPiece tokenizer whose vocabulary is their words, and a ViLT image processor that gives the
reference models' input (128 x 128, bilinear, `(x - 0.5) / 0.25`), so the training images, read
by `VQADataset`, and the images a dataset run feeds through the processor agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from mmcam.core.extras import require
from mmcam.data.images import IMAGE_SIZE
from mmcam.data.vocab import Vocabulary
from mmcam.zoo.transformer_parts import IMAGE_SETTINGS, check_padding, word_tokenizer

__all__ = ["TrainableVilt", "new_vilt", "start_from_vision", "vilt_processor"]

# a ViT layer of BLIP's vision encoder -> the same parts of a ViLT layer
VISION_PARTS = {
    "self_attn.projection": "attention.output.dense",
    "layer_norm1": "layernorm_before",
    "layer_norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}


def vilt_processor(questions: Iterable[str], *, min_count: int = 1) -> Any:
    """A `ViltProcessor` for these questions: WordPiece over their words (seen `min_count`
    times), lower-cased, and the reference models' image preprocessing."""
    require("transformers", "hf", "Training a ViLT model")
    from transformers import ViltImageProcessor, ViltProcessor

    images = ViltImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, size_divisor=32, **IMAGE_SETTINGS
    )
    tokenizer = word_tokenizer(questions, min_count=min_count)
    return ViltProcessor(image_processor=images, tokenizer=tokenizer)


def new_vilt(
    processor: Any,
    answers: Sequence[str],
    *,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    patch: int = 16,
    max_question: int = 32,
) -> TrainableVilt:
    """A randomly initialised ViLT of this size classifying over `answers`."""
    require("transformers", "hf", "Training a ViLT model")
    from transformers import ViltConfig, ViltForQuestionAnswering

    config = ViltConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=IMAGE_SIZE,
        patch_size=patch,
        max_position_embeddings=max_question,
        num_labels=len(answers),
        id2label=dict(enumerate(answers)),
        label2id={answer: i for i, answer in enumerate(answers)},
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    return TrainableVilt(ViltForQuestionAnswering(config), processor)


class QuestionTokens:
    """The tokenizer as the training data's vocabulary: `encode(question)` gives
    `[CLS] question [SEP]` as ids, cut to `limit` tokens; `len` is the vocabulary's size."""

    def __init__(self, tokenizer: Any, limit: int) -> None:
        self.tokenizer = tokenizer
        self.limit = limit

    def encode(self, question: str) -> list[int]:
        return self.tokenizer(question, truncation=True, max_length=self.limit)["input_ids"]

    def __len__(self) -> int:
        return len(self.tokenizer)


class TrainableVilt(nn.Module):
    """A ViLT VQA model as the training loop's VQA model (see the module's docstring)."""

    def __init__(self, model: nn.Module, processor: Any) -> None:
        super().__init__()
        check_padding(processor.tokenizer)
        self.model, self.processor = model, processor
        config = model.config
        self.answers = [config.id2label[i] for i in range(config.num_labels)]
        self.vocab = QuestionTokens(processor.tokenizer, config.max_position_embeddings)

    def question_logits(self, images: Tensor, image_index: Tensor, questions: Tensor) -> Tensor:
        """Answer logits `[N, A]` for images `[B, 3, S, S]`, each question's image row
        `image_index` `[N]` and padded question ids `[N, L]`."""
        return self.model(
            input_ids=questions,
            attention_mask=(questions != Vocabulary.PAD_INDEX).long(),
            pixel_values=images[image_index],
        ).logits


def start_from_vision(vilt: nn.Module, vision: dict[str, Tensor]) -> list[str]:
    """Copy a trained ViT image encoder into a new `ViltForQuestionAnswering`, as ViLT's authors
    start from a pre-trained ViT: the patch projection, class token and position embeddings, and
    the first layers (as many as both have; with as many layers, the final layer norm too).
    `vision` is a `BlipVisionModel`'s state dict (`model.vision_model.state_dict()` of a BLIP
    captioner: fused `qkv` split into query, key and value). The text embeddings, any layer
    beyond the encoder's, the pooler and the classifier keep their random start. Returns the
    ViLT parameters copied; a shape that differs (another hidden size, patch or image size) is
    refused naming both."""
    target = vilt.vilt
    copied = {
        "embeddings.cls_token": vision["embeddings.class_embedding"],
        "embeddings.position_embeddings": vision["embeddings.position_embedding"],
        "embeddings.patch_embeddings.projection.weight": vision[
            "embeddings.patch_embedding.weight"
        ],
        "embeddings.patch_embeddings.projection.bias": vision["embeddings.patch_embedding.bias"],
    }
    source_layers = len({key.split(".")[2] for key in vision if key.startswith("encoder.layers.")})
    layers = min(source_layers, len(target.encoder.layer))
    for i in range(layers):
        source, into = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            query, key, value = vision[f"{source}self_attn.qkv.{kind}"].chunk(3)
            for name, part in (("query", query), ("key", key), ("value", value)):
                copied[f"{into}attention.attention.{name}.{kind}"] = part
            for part, name in VISION_PARTS.items():
                copied[f"{into}{name}.{kind}"] = vision[f"{source}{part}.{kind}"]
    if layers == source_layers == len(target.encoder.layer):
        copied["layernorm.weight"] = vision["post_layernorm.weight"]
        copied["layernorm.bias"] = vision["post_layernorm.bias"]
    state = target.state_dict()
    for name, value in copied.items():
        if state[name].shape != value.shape:
            raise ValueError(
                f"the image encoder's {name} is {tuple(value.shape)}, the ViLT model's "
                f"{tuple(state[name].shape)}: build the ViLT with the encoder's hidden size, "
                "patch and image size"
            )
    target.load_state_dict(copied, strict=False)
    return sorted(copied)
