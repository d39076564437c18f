"""Datasets and formats: readers of the official COCO 2014 / VQA v2 files, image loading, and
the torch Datasets the trainers use.

A dataset root is laid out as the official downloads unpack (the synthetic shapes set is written
the same way, so one code path serves both):

    <root>/train2014/COCO_train2014_000000000009.jpg        (shapes: .png)
    <root>/annotations/captions_train2014.json
    <root>/annotations/instances_train2014.json
    <root>/v2_OpenEnded_mscoco_train2014_questions.json
    <root>/v2_mscoco_train2014_annotations.json

Readers keep the fields mmcam uses and ignore the rest (`info`, `licenses`, `coco_url`, ...).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from mmcam.vocab import Vocabulary

IMAGE_SIZE = 128
MEAN = 0.5  # pixels in [0, 1] are mapped to (x - MEAN) / STD
STD = 0.25


# ----------------------------------------------------------------------------- paths and JSON


def split_paths(root: str | Path, split: str, year: str = "2014") -> dict[str, Path]:
    """The official COCO / VQA v2 paths of one split (`"train"`, `"val"`) under `root`."""
    root = Path(root)
    name = f"{split}{year}"
    return {
        "images": root / name,
        "captions": root / "annotations" / f"captions_{name}.json",
        "instances": root / "annotations" / f"instances_{name}.json",
        "questions": root / f"v2_OpenEnded_mscoco_{name}_questions.json",
        "vqa_annotations": root / f"v2_mscoco_{name}_annotations.json",
    }


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a COCO / VQA v2 JSON file")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def write_json(path: str | Path, data: Any, *, indent: int | None = None) -> Path:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as f:
        json.dump(data, f, indent=indent, separators=None if indent else (",", ":"))
    os.replace(temporary, path)
    return path


def _require(record: dict, keys: Sequence[str], path: Path, what: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(f"{path}: a {what} lacks {missing}; found keys {sorted(record)}")


# ----------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class ImageInfo:
    """One entry of a COCO `images` list."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass
class CocoCaptions:
    """A COCO captions file: its images (by id, in file order) and each image's captions."""

    images: dict[int, ImageInfo]
    captions: dict[int, list[str]]


@dataclass(frozen=True)
class CocoInstance:
    """One COCO instance annotation: box `[x, y, w, h]` in pixels and category."""

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: int = 0
    extra: dict = field(default_factory=dict, compare=False)  # non-official fields (e.g. colour)


@dataclass
class CocoInstances:
    """A COCO instances file: images, each image's instances, and category id -> name."""

    images: dict[int, ImageInfo]
    instances: dict[int, list[CocoInstance]]
    categories: dict[int, str]


@dataclass(frozen=True)
class VQAItem:
    """One VQA v2 question, with its annotation when the annotations file was given."""

    question_id: int
    image_id: int
    question: str
    answers: tuple[str, ...] = ()  # the (10) human answers
    multiple_choice_answer: str | None = None
    answer_type: str | None = None
    question_type: str | None = None


def _read_images(data: dict, path: Path) -> dict[int, ImageInfo]:
    if "images" not in data:
        raise ValueError(f"{path} has no 'images' list; is it a COCO annotations file?")
    images = {}
    for record in data["images"]:
        _require(record, ("id", "file_name"), path, "image")
        images[int(record["id"])] = ImageInfo(
            int(record["id"]),
            record["file_name"],
            int(record.get("width", 0)),
            int(record.get("height", 0)),
        )
    return images


def read_coco_captions(path: str | Path) -> CocoCaptions:
    """Read `captions_<split>2014.json`: images and `annotations` `[{image_id, caption}]`."""
    path = Path(path)
    data = read_json(path)
    images = _read_images(data, path)
    captions: dict[int, list[str]] = {image_id: [] for image_id in images}
    for record in data.get("annotations", []):
        _require(record, ("image_id", "caption"), path, "caption annotation")
        image_id = int(record["image_id"])
        if image_id not in captions:
            raise ValueError(f"{path}: a caption refers to image {image_id}, not in 'images'")
        captions[image_id].append(record["caption"].strip())
    return CocoCaptions(images, captions)


def read_coco_instances(path: str | Path) -> CocoInstances:
    """Read `instances_<split>2014.json`: images, annotations with `bbox`, and `categories`."""
    path = Path(path)
    data = read_json(path)
    images = _read_images(data, path)
    categories = {int(c["id"]): c["name"] for c in data.get("categories", [])}
    official = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
    instances: dict[int, list[CocoInstance]] = {image_id: [] for image_id in images}
    for record in data.get("annotations", []):
        _require(record, ("image_id", "category_id", "bbox"), path, "instance annotation")
        image_id = int(record["image_id"])
        if image_id not in instances:
            raise ValueError(f"{path}: an instance refers to image {image_id}, not in 'images'")
        x, y, w, h = (float(v) for v in record["bbox"])
        instances[image_id].append(
            CocoInstance(
                id=int(record.get("id", 0)),
                image_id=image_id,
                category_id=int(record["category_id"]),
                bbox=(x, y, w, h),
                area=float(record.get("area", w * h)),
                iscrowd=int(record.get("iscrowd", 0)),
                extra={k: v for k, v in record.items() if k not in official},
            )
        )
    return CocoInstances(images, instances, categories)


def read_vqa(
    questions_path: str | Path, annotations_path: str | Path | None = None
) -> list[VQAItem]:
    """Read a VQA v2 questions file and, when given, its annotations file, joined on question id.

    Every question must have an annotation when an annotations file is given (and vice versa)."""
    questions_path = Path(questions_path)
    data = read_json(questions_path)
    if "questions" not in data:
        raise ValueError(f"{questions_path} has no 'questions' list; is it a VQA questions file?")
    annotations: dict[int, dict] = {}
    if annotations_path is not None:
        annotations_path = Path(annotations_path)
        ann_data = read_json(annotations_path)
        if "annotations" not in ann_data:
            raise ValueError(f"{annotations_path} has no 'annotations' list")
        for record in ann_data["annotations"]:
            _require(record, ("question_id", "answers"), annotations_path, "VQA annotation")
            annotations[int(record["question_id"])] = record
    items = []
    for record in data["questions"]:
        _require(record, ("question_id", "image_id", "question"), questions_path, "question")
        question_id = int(record["question_id"])
        item = VQAItem(question_id, int(record["image_id"]), record["question"])
        if annotations_path is not None:
            if question_id not in annotations:
                raise ValueError(f"{annotations_path} has no annotation of question {question_id}")
            ann = annotations.pop(question_id)
            item = VQAItem(
                question_id,
                item.image_id,
                item.question,
                tuple(a["answer"] for a in ann["answers"]),
                ann.get("multiple_choice_answer"),
                ann.get("answer_type"),
                ann.get("question_type"),
            )
        items.append(item)
    if annotations:
        raise ValueError(
            f"{annotations_path} annotates {len(annotations)} questions missing from "
            f"{questions_path} (e.g. {sorted(annotations)[:3]})"
        )
    return items


# ----------------------------------------------------------------------------- images


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit RGB (grayscale, RGBA, palette, CMYK and 16-bit converted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path} is not a readable image: {error}") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB: 16-bit / 32-bit / float grayscale rescaled to 0-255, alpha dropped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F" and array.max() <= 1.0:
            top = 1.0
        array = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def image_path(root: str | Path, split: str, image_id: int, file_name: str | None = None) -> Path:
    """The file of image `image_id` of a split: `file_name` when known, else the official COCO
    name `COCO_<split>2014_<id:012d>.jpg` (or `.png` when that exists instead)."""
    folder = split_paths(root, split)["images"]
    if file_name:
        return folder / file_name
    stem = f"COCO_{split}2014_{image_id:012d}"
    jpg = folder / f"{stem}.jpg"
    png = folder / f"{stem}.png"
    return png if not jpg.exists() and png.exists() else jpg


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> Tensor:
    """A PIL image -> the reference models' input `[3, size, size]`: RGB, resized (bilinear) to
    `size` x `size`, scaled to [0, 1], then normalised as (x - 0.5) / 0.25."""
    return normalize(image_to_uint8(image, size))


def image_to_uint8(image: Image.Image, size: int = IMAGE_SIZE) -> Tensor:
    """RGB, resized to `size` x `size`, as a uint8 tensor `[3, size, size]` (compact to cache)."""
    image = to_rgb(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def normalize(pixels: Tensor) -> Tensor:
    """uint8 pixels `[..., 3, H, W]` -> normalised float model input."""
    return (pixels.float() / 255.0 - MEAN) / STD


def unnormalize(images: Tensor) -> Tensor:
    """Model input -> float pixels in [0, 1] (for drawing)."""
    return (images * STD + MEAN).clamp(0, 1)


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


class CaptionDataset(Dataset):
    """COCO captions of one split: item = (image `[3, S, S]`, list of caption token tensors).

    `references` keeps each image's first N captions (None: all). Each caption is
    `[bos, words..., eos]`; the trainer decodes all of an image's captions from one encoding."""

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
    ) -> None:
        data = read_coco_captions(split_paths(root, split)["captions"])
        ids = [i for i in data.images if data.captions[i]][:limit]
        self.image_ids = ids
        self.references = {i: data.captions[i] for i in ids}
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
    are dropped from training (`keep_unanswerable=False`), as is usual."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        vocab: Vocabulary,
        answers: Sequence[str],
        *,
        size: int = IMAGE_SIZE,
        cache: bool = True,
        keep_unanswerable: bool = True,
        limit: int | None = None,
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
