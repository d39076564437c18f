"""What a dataset run reads: COCO captions or VQA v2 questions over an image folder (with
optional instances), and the images as DataLoader workers load them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from mmcam.data.annotations import (
    CocoInstance,
    ImageInfo,
    VQAItem,
    read_coco_captions,
    read_coco_instances,
    read_vqa,
    split_paths,
)
from mmcam.data.files import file_digest, file_in_folder
from mmcam.data.images import bomb_limit_enforced, load_image
from mmcam.evaluation.word_categories import WordCategories

__all__ = [
    "CaptionData", "LoadedImage", "VQAData", "read_caption_data", "read_caption_split",
    "read_split", "read_vqa_data", "read_vqa_split",
]  # fmt: skip


# ----------------------------------------------------------------------------- data


@dataclass
class CaptionData:
    """What a captions run reads: image files, reference captions, and (optionally) the
    instances each category word is scored against."""

    files: dict[int, Path]  # image id -> file, in the captions file's order
    references: dict[int, list[str]]
    categories: WordCategories
    sources: dict  # image folder, annotation files and their hashes
    instances: dict[int, list[CocoInstance]] | None = None
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # annotated (height, width)
    unknown_images: dict[int, int] = field(default_factory=dict)  # id not in 'images': captions


@dataclass
class VQAData:
    """What a VQA run reads: each image's questions (with human answers when annotated), image
    files, and (optionally) instances."""

    questions: dict[int, list[VQAItem]]  # image id -> its questions, in file order
    files: dict[int, Path]
    categories: WordCategories
    sources: dict  # image folder, annotation files and their hashes
    instances: dict[int, list[CocoInstance]] | None = None
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # annotated (height, width)

    @property
    def annotated(self) -> bool:
        return any(item.answers for items in self.questions.values() for item in items)


def _categories(
    instances_path: str | Path | None, categories: str
) -> tuple[WordCategories, dict[int, list[CocoInstance]] | None, dict]:
    """Categories from the instances file when given (its ids), else the named default set."""
    if instances_path is not None:
        instances = read_coco_instances(instances_path)
        return WordCategories(instances.categories), instances.instances, instances.images
    if categories not in ("coco", "shapes"):
        raise ValueError(f"categories must be 'coco' or 'shapes', got {categories!r}")
    return getattr(WordCategories, categories)(), None, {}


def read_caption_data(
    captions: str | Path,
    images: str | Path,
    instances: str | Path | None = None,
    *,
    categories: str = "coco",
    limit: int | None = None,
) -> CaptionData:
    """A COCO captions file and its image folder; `instances` adds ground-truth boxes (and
    their categories); without it, `categories` ("coco" or "shapes") names the words to box."""
    data = read_coco_captions(captions)
    words, boxes, _ = _categories(instances, categories)
    ids = list(data.images)[:limit]
    files = {i: _image_file(images, i, data.images[i].file_name) for i in ids}
    sources = _sources(images, captions=captions, instances=instances)
    references = {i: data.captions[i] for i in ids}
    sizes = _annotated_sizes(data.images, ids)
    return CaptionData(files, references, words, sources, boxes, sizes, data.unknown_images)


def read_vqa_data(
    questions: str | Path,
    images: str | Path,
    annotations: str | Path | None = None,
    instances: str | Path | None = None,
    *,
    categories: str = "coco",
    limit: int | None = None,
) -> VQAData:
    """VQA v2 questions (and annotations) over an image folder. Image files come from the
    instances file's `file_name`s when given, else the official `COCO_<folder>_<id:012d>.jpg`
    (or `.png`). `limit` keeps the first images' questions."""
    items = read_vqa(questions, annotations)
    words, boxes, image_infos = _categories(instances, categories)
    by_image: dict[int, list[VQAItem]] = {}
    for item in items:
        by_image.setdefault(item.image_id, []).append(item)
    ids = list(by_image)[:limit]
    folder = Path(images)
    files = {}
    for image_id in ids:
        info = image_infos.get(image_id)
        files[image_id] = (
            _image_file(folder, image_id, info.file_name)
            if info
            else _official_file(folder, image_id)
        )
    sources = _sources(images, questions=questions, annotations=annotations, instances=instances)
    sizes = _annotated_sizes(image_infos, ids)
    return VQAData({i: by_image[i] for i in ids}, files, words, sources, boxes, sizes)


def read_caption_split(
    paths: Mapping[str, Any], instances: str | Path | None, limit: int | None = None
) -> CaptionData:
    """A captions run's data from a split's `split_paths`, with `instances` (or None)."""
    return read_caption_data(paths["captions"], paths["images"], instances, limit=limit)


def read_vqa_split(
    paths: Mapping[str, Any], instances: str | Path | None, limit: int | None = None
) -> VQAData:
    """A VQA run's data from a split's `split_paths` (its answers: `vqa_annotations`, None for
    none), with `instances` (or None)."""
    return read_vqa_data(
        paths["questions"], paths["images"], paths["vqa_annotations"], instances, limit=limit
    )


def read_split(
    root: str | Path, split: str, limit: int | None = None
) -> dict[str, CaptionData | VQAData]:
    """Both tasks' data of one split in the official layout under `root`, with its instances:
    `{"captions": CaptionData, "vqa": VQAData}`, the first `limit` images of each."""
    paths = split_paths(root, split)
    return {
        "captions": read_caption_split(paths, paths["instances"], limit),
        "vqa": read_vqa_split(paths, paths["instances"], limit),
    }


def _annotated_sizes(infos: dict[int, ImageInfo], ids: list[int]) -> dict[int, tuple[int, int]]:
    """(height, width) of the images among `ids` whose annotation gives both."""
    return {
        i: (infos[i].height, infos[i].width)
        for i in ids
        if i in infos and infos[i].height and infos[i].width
    }


def image_notes(data: CaptionData | VQAData, image_id: int, loaded: LoadedImage) -> dict:
    """What a record notes about its image file: the mode it was converted from, and both
    (height, width) when the file's size differs from the annotation's (the image is explained
    at the file's size, and not scored against boxes drawn on the annotated one)."""
    notes: dict[str, Any] = {}
    if loaded.mode != "RGB":
        notes["converted_from"] = loaded.mode
    annotated = data.sizes.get(image_id)
    if annotated is not None and tuple(annotated) != tuple(loaded.size):
        notes["size_mismatch"] = {"annotation": list(annotated), "file": list(loaded.size)}
    return notes


def _image_file(folder: str | Path, image_id: int, file_name: str) -> Path:
    return file_in_folder(folder, file_name, f"image {image_id}'s file_name")


def _sources(images: str | Path, **files: str | Path | None) -> dict:
    """What a run's results depend on in the data: the image folder, and each annotation
    file's path and content hash (`run.json` keeps them, so a resume over other data is
    refused)."""
    sources: dict = {"images": str(Path(images).resolve())}
    for name, path in files.items():
        if path is not None:
            sources[name] = {"path": str(Path(path).resolve()), "sha256": file_digest(path)}
    return sources


def _official_file(folder: Path, image_id: int) -> Path:
    stem = f"COCO_{folder.name}_{image_id:012d}"
    jpg, png = folder / f"{stem}.jpg", folder / f"{stem}.png"
    return png if not jpg.exists() and png.exists() else jpg


# ----------------------------------------------------------------------------- loading


@dataclass
class LoadedImage:
    """One image as a DataLoader worker loaded it."""

    pixels: Tensor  # [3, H, W] model input
    size: tuple[int, int]  # original (height, width)
    mode: str  # the file's PIL mode; "L", "RGBA", "I;16", ... were converted to RGB


class ImageLoader:
    """image id -> `LoadedImage`; raises `BadData` (and the runner records why) on a missing,
    truncated or non-image file, or one over the decompression-bomb limit."""

    def __init__(self, files: dict[int, Path], preprocess: Callable[[Image.Image], Tensor]):
        self.files, self.preprocess = files, preprocess

    def __call__(self, image_id: int) -> LoadedImage:
        path = self.files[image_id]
        image = load_image(path)  # 8-bit RGB, or BadData naming the file
        with bomb_limit_enforced(), Image.open(path) as header:
            mode = header.mode
        return LoadedImage(self.preprocess(image), (image.height, image.width), mode)


def image_batches(
    items: Sequence[tuple[Any, LoadedImage]], size: int
) -> Iterator[list[tuple[Any, LoadedImage]]]:
    """Consecutive items, at most `size`, whose inputs share a shape (so they stack)."""
    batch: list = []
    for item in items:
        if batch and (len(batch) == size or item[1].pixels.shape != batch[0][1].pixels.shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch
