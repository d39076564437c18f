"""A small ViLT VQA model trained from scratch by the reference models' training loop.

`TrainableVilt` wraps a `transformers.ViltForQuestionAnswering` and its processor in the shape
the loop (`mmcam.zoo.training`) expects of a VQA model: `vocab` (its `encode` reads a question
into token ids, so `VQADataset` reads the questions with the model's own tokenizer),
`question_logits` and `answers`. `save_vilt` writes the Hugging Face format
(`save_pretrained`, model and processor), so the folder loads like any hub checkpoint:
`mmcam explain-vqa --hf FOLDER`, `load_hf_vqa(FOLDER)`.

The processor is built here, from the training questions: a BERT WordPiece tokenizer whose
vocabulary is their words (each a whole piece), and a ViLT image processor that gives exactly
the reference models' input (128 x 128, bilinear, `(x - 0.5) / 0.25`), so the training images,
read by `VQADataset`, and the images a dataset run feeds through the processor agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mmcam.core.extras import require
from mmcam.data.images import IMAGE_SIZE, MEAN, STD
from mmcam.data.vocab import Vocabulary

__all__ = ["TrainableVilt", "new_vilt", "save_vilt", "vilt_processor"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] first: id 0, as ours


def vilt_processor(questions: Iterable[str], *, min_count: int = 1) -> Any:
    """A `ViltProcessor` for these questions: WordPiece over their words (seen `min_count`
    times), lower-cased, and the reference models' image preprocessing."""
    require("transformers", "hf", "Training a ViLT model")
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast, ViltImageProcessor, ViltProcessor

    normalizer, split = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts: dict[str, int] = {}
    for question in questions:
        for word, _ in split.pre_tokenize_str(normalizer.normalize_str(question)):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(word for word, count in counts.items() if count >= min_count)
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *words])}
    images = ViltImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        size_divisor=32,
        resample=2,  # PIL's BILINEAR, as `mmcam.data.images.preprocess`
        image_mean=[MEAN] * 3,
        image_std=[STD] * 3,
    )
    return ViltProcessor(image_processor=images, tokenizer=BertTokenizerFast(vocab=vocab))


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
        if processor.tokenizer.pad_token_id != Vocabulary.PAD_INDEX:
            raise ValueError(
                f"the tokenizer pads with id {processor.tokenizer.pad_token_id}; the training "
                f"batches pad with {Vocabulary.PAD_INDEX}"
            )
        self.model = model
        self.processor = processor
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


def save_vilt(model: TrainableVilt, folder: str | Path) -> Path:
    """The model and its processor in the Hugging Face format (`save_pretrained`)."""
    folder = Path(folder)
    model.model.save_pretrained(folder)
    model.processor.save_pretrained(folder)
    return folder
