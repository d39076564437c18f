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

__all__ = ["TrainableVilt", "new_vilt", "vilt_processor"]


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
