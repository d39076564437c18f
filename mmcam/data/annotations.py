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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmcam.data.files import RefusedInput, read_json

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


def _require(record: dict, keys: Sequence[str], path: Path, what: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise RefusedInput(f"{path}: a {what} lacks {missing}; found keys {sorted(record)}")


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
    """A COCO captions file: its images (by id, in file order) and each image's captions;
    `unknown_images` counts the captions naming an image id the `images` list lacks (a run
    skips and reports them)."""

    images: dict[int, ImageInfo]
    captions: dict[int, list[str]]
    unknown_images: dict[int, int] = field(default_factory=dict)  # image id -> its captions


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
        raise RefusedInput(f"{path} has no 'images' list; is it a COCO annotations file?")
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
    unknown: dict[int, int] = {}
    for record in data.get("annotations", []):
        _require(record, ("image_id", "caption"), path, "caption annotation")
        image_id = int(record["image_id"])
        if image_id in captions:
            captions[image_id].append(record["caption"].strip())
        else:
            unknown[image_id] = unknown.get(image_id, 0) + 1
    return CocoCaptions(images, captions, unknown)


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
            raise RefusedInput(f"{path}: an instance refers to image {image_id}, not in 'images'")
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
        raise RefusedInput(f"{questions_path} has no 'questions' list; is it a VQA questions file?")
    annotations: dict[int, dict] = {}
    if annotations_path is not None:
        annotations_path = Path(annotations_path)
        ann_data = read_json(annotations_path)
        if "annotations" not in ann_data:
            raise RefusedInput(f"{annotations_path} has no 'annotations' list")
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
                raise RefusedInput(
                    f"{annotations_path} has no annotation of question {question_id}"
                )
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
        raise RefusedInput(
            f"{annotations_path} annotates {len(annotations)} questions missing from "
            f"{questions_path} (e.g. {sorted(annotations)[:3]})"
        )
    return items
