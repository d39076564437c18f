"""The torch Datasets (and collate functions) the reference models are trained on: COCO
captions and VQA v2 questions of one split, images decoded once and cached."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from mmcam.data.annotations import (
    VQAItem,
    read_coco_captions,
    read_vqa,
    split_paths,
)
from mmcam.data.images import (
    IMAGE_SIZE,
    image_path,
    image_to_uint8,
    load_image,
    normalize,
)
from mmcam.data.vocab import Vocabulary


class _ImageCache:
    """Decoded, resized uint8 images by id, loaded on first use (so each file is read once)."""

    def __init__(self, paths: dict[int, Path], size: int, cache: bool) -> None:
        self.paths, self.size, self.cache = paths, size, cache
        self.store: dict[int, Tensor] = {}

    def __call__(self, image_id: int) -> Tensor:
        if image_id in self.store:
            return self.store[image_id]
        pixels = image_to_uint8(load_image(self.paths[image_id]), self.size)
        if self.cache:
            self.store[image_id] = pixels
        return pixels


# ----------------------------------------------------------------------------- torch datasets


def permuted(values: Sequence[Any], seed: int) -> list[Any]:
    """`values` in a random order drawn from `seed`: the label permutation of the data
    randomisation test (Adebayo et al., NeurIPS 2018), which keeps the labels' frequencies
    but breaks their link to the images."""
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))
    return [values[i] for i in order.tolist()]


class CaptionDataset(Dataset):
    """COCO captions of one split: item = (image `[3, S, S]`, list of caption token tensors).

    `references` keeps each image's first N captions (None: all). Each caption is
    `[bos, words..., eos]`; the trainer decodes all of an image's captions from one encoding.
    `shuffle_captions=seed` gives each image the captions of another image (a random
    permutation of the images' caption lists): the label-randomised twin's training set."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        vocab: Vocabulary,
        *,
        references: int | None = None,
        size: int = IMAGE_SIZE,
        cache: bool = True,
        limit: int | None = None,
        shuffle_captions: int | None = None,
    ) -> None:
        data = read_coco_captions(split_paths(root, split)["captions"])
        ids = [i for i in data.images if data.captions[i]][:limit]
        self.image_ids = ids
        captions = [data.captions[i] for i in ids]
        if shuffle_captions is not None:
            captions = permuted(captions, shuffle_captions)
        self.references = dict(zip(ids, captions, strict=True))
        self.vocab = vocab
        self.keep = references
        paths = {i: image_path(root, split, i, data.images[i].file_name) for i in ids}
        self.images = _ImageCache(paths, size, cache)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, list[Tensor]]:
        image_id = self.image_ids[index]
        captions = self.references[image_id][: self.keep]
        tokens = [torch.tensor(self.vocab.encode(c, bos=True, eos=True)) for c in captions]
        return normalize(self.images(image_id)), tokens


def collate_captions(batch: Sequence[tuple[Tensor, list[Tensor]]]) -> dict[str, Tensor]:
    """Images `[B, 3, S, S]`; all captions `[N, L]` (padded with 0 = `<pad>`), their image's
    row `image_index` `[N]`, and `lengths` `[N]` = decoding steps (words + EOS)."""
    images = torch.stack([image for image, _ in batch])
    captions = [c for _, caps in batch for c in caps]
    image_index = torch.tensor([b for b, (_, caps) in enumerate(batch) for _ in caps])
    tokens = pad_sequence(captions, batch_first=True, padding_value=Vocabulary.PAD_INDEX)
    lengths = torch.tensor([len(c) - 1 for c in captions])
    return {"images": images, "tokens": tokens, "lengths": lengths, "image_index": image_index}


def answer_scores(answers: Sequence[str], answer_index: dict[str, int]) -> dict[int, float]:
    """Soft VQA targets: answer -> min(#humans who gave it / 3, 1), for answers in the list."""
    counts = Counter(a.strip() for a in answers)
    return {answer_index[a]: min(n / 3.0, 1.0) for a, n in counts.items() if a in answer_index}


def top_answers(items: Sequence[VQAItem], count: int) -> list[str]:
    """The `count` most frequent `multiple_choice_answer`s (ties: alphabetical), the answer list."""
    counts = Counter(item.multiple_choice_answer for item in items if item.multiple_choice_answer)
    return [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


class VQADataset(Dataset):
    """VQA v2 questions of one split grouped by image: item = (image, questions of that image
    as token tensors, their target rows, their question ids). One image encoding then serves
    all of its questions in training. Questions whose answers are all outside the answer list
    are dropped from training (`keep_unanswerable=False`), as is usual.
    `permute_answers=seed` gives each question the human answers of another question (a random
    permutation over the kept questions): the label-randomised twin's training set.
    `vocab` reads a question into ids: a `Vocabulary`, or anything with the same
    `encode(question) -> list[int]` that pads with id 0 (a transformer's own tokenizer)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        vocab: Vocabulary | Any,
        answers: Sequence[str],
        *,
        size: int = IMAGE_SIZE,
        cache: bool = True,
        keep_unanswerable: bool = True,
        limit: int | None = None,
        permute_answers: int | None = None,
    ) -> None:
        paths = split_paths(root, split)
        items = read_vqa(paths["questions"], paths["vqa_annotations"])
        file_names = {}
        if paths["captions"].is_file():  # the official file names, when a COCO file is around
            file_names = {
                i: info.file_name
                for i, info in read_coco_captions(paths["captions"]).images.items()
            }
        self.answer_index = {a: i for i, a in enumerate(answers)}
        self.num_answers = len(answers)
        by_image: dict[int, list[VQAItem]] = {}
        for item in items:
            if not keep_unanswerable and not answer_scores(item.answers, self.answer_index):
                continue
            by_image.setdefault(item.image_id, []).append(item)
        self.image_ids = list(by_image)[:limit]
        self.items = {i: by_image[i] for i in self.image_ids}
        if permute_answers is not None:
            kept = [q for i in self.image_ids for q in self.items[i]]
            labels = permuted(
                [(q.multiple_choice_answer, q.answers) for q in kept], permute_answers
            )
            new = {q.question_id: label for q, label in zip(kept, labels, strict=True)}
            self.items = {
                i: [
                    replace(
                        q,
                        multiple_choice_answer=new[q.question_id][0],
                        answers=new[q.question_id][1],
                    )
                    for q in self.items[i]
                ]
                for i in self.image_ids
            }
        self.vocab = vocab
        self.images = _ImageCache(
            {i: image_path(root, split, i, file_names.get(i)) for i in self.image_ids}, size, cache
        )

    def __len__(self) -> int:
        return len(self.image_ids)

    def questions(self) -> list[VQAItem]:
        """All questions, in item order."""
        return [q for i in self.image_ids for q in self.items[i]]

    def __getitem__(self, index: int) -> tuple[Tensor, list[Tensor], Tensor, list[int]]:
        image_id = self.image_ids[index]
        items = self.items[image_id]
        tokens = [torch.tensor(self.vocab.encode(q.question)) for q in items]
        targets = torch.zeros(len(items), self.num_answers)
        for row, item in enumerate(items):
            for column, score in answer_scores(item.answers, self.answer_index).items():
                targets[row, column] = score
        return normalize(self.images(image_id)), tokens, targets, [q.question_id for q in items]


def collate_vqa(batch: Sequence[tuple[Tensor, list[Tensor], Tensor, list[int]]]) -> dict[str, Any]:
    """Images `[B, 3, S, S]`; questions `[N, L]` padded; targets `[N, A]` (VQA soft scores);
    `image_index` `[N]` (each question's image row); `question_ids` (N ints)."""
    images = torch.stack([b[0] for b in batch])
    tokens = [t for b in batch for t in b[1]]
    return {
        "images": images,
        "questions": pad_sequence(tokens, batch_first=True, padding_value=Vocabulary.PAD_INDEX),
        "targets": torch.cat([b[2] for b in batch]),
        "image_index": torch.tensor([row for row, b in enumerate(batch) for _ in b[1]]),
        "question_ids": [q for b in batch for q in b[3]],
    }


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
