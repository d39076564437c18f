"""What the transformers trained here (ViLT, BLIP) share: a WordPiece tokenizer whose pieces are
the training texts' whole words, image-processor settings that give the reference models' exact
input, the padding the training batches use, and saving in the Hugging Face format."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmcam.core.extras import require
from mmcam.data.images import MEAN, STD
from mmcam.data.vocab import Vocabulary

__all__ = ["IMAGE_SETTINGS", "check_padding", "save_pretrained", "word_tokenizer"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] first: id 0, as ours

# 128 x 128, bilinear (PIL's 2), (x - 0.5) / 0.25: `mmcam.data.images.preprocess`
IMAGE_SETTINGS: dict[str, Any] = {"resample": 2, "image_mean": [MEAN] * 3, "image_std": [STD] * 3}


def word_tokenizer(texts: Iterable[str], *, min_count: int = 1, extra: tuple[str, ...] = ()) -> Any:
    """A `BertTokenizerFast` over the words of `texts` seen `min_count` times (lower-cased, split
    as BERT splits them), after the special tokens and `extra` ones (BLIP's "[DEC]")."""
    require("transformers", "hf", "Training a transformer")
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    normalizer, split = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts: dict[str, int] = {}
    for text in texts:
        for word, _ in split.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(word for word, count in counts.items() if count >= min_count)
    tokens = [*SPECIAL_TOKENS, *extra, *words]
    return BertTokenizerFast(vocab={token: index for index, token in enumerate(tokens)})


def check_padding(tokenizer: Any) -> None:
    """Refuse a tokenizer that does not pad with the training batches' id 0."""
    if tokenizer.pad_token_id != Vocabulary.PAD_INDEX:
        raise ValueError(
            f"the tokenizer pads with id {tokenizer.pad_token_id}; the training batches pad "
            f"with {Vocabulary.PAD_INDEX}"
        )


def save_pretrained(trained: Any, folder: str | Path) -> Path:
    """A trained model's Hugging Face model (`trained.model`) and processor
    (`trained.processor`) in the Hugging Face format, so the folder loads like a hub checkpoint
    (`--hf FOLDER`)."""
    folder = Path(folder)
    trained.model.save_pretrained(folder)
    trained.processor.save_pretrained(folder)
    return folder
