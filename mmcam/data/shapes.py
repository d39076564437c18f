"""The synthetic "shapes" dataset: scenes of coloured shapes with captions, boxes and questions.

Every scene is a 128x128 RGB image on a noisy, textured background holding 1 to 3
non-overlapping shapes; no two shapes share both colour and kind, so "the red circle" names
exactly one object. Each scene comes with ground-truth boxes, five reference captions (the first
is canonical: objects named left to right) and questions of five types. `write_shapes` writes a
split in the official COCO 2014 / VQA v2 layout, so every reader and trainer runs the same code
path on shapes as on the real datasets:

    <out>/train2014/COCO_train2014_000000000001.png
    <out>/annotations/captions_train2014.json
    <out>/annotations/instances_train2014.json
    <out>/v2_OpenEnded_mscoco_train2014_questions.json
    <out>/v2_mscoco_train2014_annotations.json

Generation is deterministic: scene `i` of a split depends only on `(seed, split, i)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mmcam.data.annotations import split_paths
from mmcam.data.files import write_json

IMAGE_SIZE = 128
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 225),
    "yellow": (235, 215, 40),
    "purple": (150, 55, 195),
    "orange": (245, 135, 25),
}
MIN_SIZE = 20  # smallest shape side in pixels: >= 18 so a 16x16 feature grid can localise it
MAX_SIZE = 40
GAP = 4  # minimum empty pixels between two shapes' boxes
POSITION_MARGIN = 12  # position questions only when the centre is this far from the middle
SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}


@dataclass(frozen=True)
class ShapeObject:
    """One shape in a scene: its kind, colour and tight box `[x, y, w, h]` in pixels."""

    kind: str
    color: str
    bbox: tuple[int, int, int, int]
    area: int

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """A generated scene: the image, its objects (left to right), captions and questions."""

    image: Image.Image
    objects: tuple[ShapeObject, ...]
    captions: tuple[str, ...]
    questions: tuple[tuple[str, str, str], ...]  # (question, answer, answer_type)


def _shape_polygon(kind: str, x: float, y: float, s: float) -> list[tuple[float, float]]:
    """Outline of a polygonal shape of side `s` whose box starts at (x, y)."""
    if kind == "square":
        return [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]
    if kind == "triangle":
        return [(x + s / 2, y), (x + s, y + s), (x, y + s)]
    if kind == "star":
        cx, cy, outer = x + s / 2, y + s / 2, s / 2
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else outer * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {KINDS}")


def _shape_mask(kind: str, x: int, y: int, s: int) -> np.ndarray:
    """Boolean `[H, W]` mask of one shape."""
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "circle":
        draw.ellipse([x, y, x + s - 1, y + s - 1], fill=255)
    else:
        draw.polygon(_shape_polygon(kind, x, y, s - 1), fill=255)
    return np.asarray(mask) > 0


def _background(rng: np.random.Generator) -> np.ndarray:
    """A muted, noisy, low-frequency textured background `[H, W, 3]` float."""
    base = rng.uniform(90, 170) + rng.uniform(-15, 15, size=3)
    coarse = rng.normal(0, 14, size=(8, 8, 3))
    coarse = np.kron(coarse, np.ones((16, 16, 1)))  # blocky texture, then smoothed by noise
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    fx, fy, phase = rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.15), rng.uniform(0, 2 * np.pi)
    stripes = 10 * np.sin(fx * xx + fy * yy + phase)[..., None]
    fine = rng.normal(0, 9, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    return base + coarse + stripes + fine


def _place_objects(rng: np.random.Generator) -> list[tuple[str, str, int, int, int]]:
    """Pick 1-3 (kind, colour) pairs, unique together, and non-overlapping places for them."""
    count = int(rng.integers(1, 4))
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        pair = (KINDS[rng.integers(len(KINDS))], list(COLORS)[rng.integers(len(COLORS))])
        if pair not in pairs:
            pairs.append(pair)
    while True:  # rejection sampling; three shapes of <= 40 px always fit quickly
        placed: list[tuple[str, str, int, int, int]] = []
        for kind, color in pairs:
            for _ in range(100):
                low = MIN_SIZE + 4 if kind == "star" else MIN_SIZE  # thin arms need more pixels
                s = int(rng.integers(low, MAX_SIZE + 1))
                x = int(rng.integers(2, IMAGE_SIZE - s - 2))
                y = int(rng.integers(2, IMAGE_SIZE - s - 2))
                if all(
                    x + s + GAP <= px
                    or px + ps + GAP <= x
                    or y + s + GAP <= py
                    or py + ps + GAP <= y
                    for _, _, px, py, ps in placed
                ):
                    placed.append((kind, color, x, y, s))
                    break
        if len(placed) == count:
            return placed


def _article(text: str) -> str:
    """`text` with its indefinite article: "a red circle", "an orange star"."""
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


def _captions(objects: list[ShapeObject]) -> tuple[str, ...]:
    """Five references naming every object; the first, canonical one lists them left to right."""
    names = [o.name for o in objects]  # already sorted left to right
    if len(names) == 1:
        (n,) = names
        return (
            _article(n),
            f"there is {_article(n)}",
            f"a single {n}",
            f"{_article(n)} on a noisy background",
            f"one {n}",
        )
    left_to_right = " to the left of ".join(_article(n) for n in names)
    right_to_left = " to the right of ".join(_article(n) for n in reversed(names))
    listed = ", ".join(_article(n) for n in names[:-1]) + f" and {_article(names[-1])}"
    a, b = objects[0], objects[1]
    vertical = "above" if a.center[1] < b.center[1] else "below"
    relation = f"{_article(a.name)} {vertical} and to the left of {_article(b.name)}"
    if len(objects) == 3:  # every reference names every object
        relation += f" and {_article(objects[2].name)} on the right"
    return (
        left_to_right,
        right_to_left,
        f"there is {left_to_right}",
        f"{len(names)} shapes : {listed}",
        relation,
    )


def _questions(objects: list[ShapeObject], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """Questions of five types (colour, shape, count, existence, position) with answers."""
    kinds = [o.kind for o in objects]
    colors = [o.color for o in objects]
    out: list[tuple[str, str, str]] = []

    unique_kind = [o for o in objects if kinds.count(o.kind) == 1]
    if unique_kind:
        o = unique_kind[rng.integers(len(unique_kind))]
        out.append((f"what color is the {o.kind}?", o.color, "other"))
    unique_color = [o for o in objects if colors.count(o.color) == 1]
    if unique_color:
        o = unique_color[rng.integers(len(unique_color))]
        out.append((f"what shape is the {o.color} object?", o.kind, "other"))

    which = rng.integers(3)
    if which == 0:
        out.append(("how many shapes are there?", str(len(objects)), "number"))
    elif which == 1:
        kind = KINDS[rng.integers(len(KINDS))]
        out.append((f"how many {kind}s are there?", str(kinds.count(kind)), "number"))
    else:
        color = list(COLORS)[rng.integers(len(COLORS))]
        out.append((f"how many {color} shapes are there?", str(colors.count(color)), "number"))

    if rng.random() < 0.5:  # a present object
        o = objects[rng.integers(len(objects))]
        out.append((f"is there {_article(o.name)}?", "yes", "yes/no"))
    else:  # an absent pair, often sharing a colour or a kind with a present object
        while True:
            o = objects[rng.integers(len(objects))]
            if rng.random() < 0.5:
                pair = (o.color, KINDS[rng.integers(len(KINDS))])
            else:
                pair = (list(COLORS)[rng.integers(len(COLORS))], o.kind)
            if all((p.color, p.kind) != pair for p in objects):
                break
        out.append((f"is there {_article(pair[0] + ' ' + pair[1])}?", "no", "yes/no"))

    o = objects[rng.integers(len(objects))]
    cx, cy = o.center
    horizontal = abs(cx - IMAGE_SIZE / 2) >= POSITION_MARGIN
    vertical = abs(cy - IMAGE_SIZE / 2) >= POSITION_MARGIN
    if horizontal and (not vertical or rng.random() < 0.5):
        side = "left" if cx < IMAGE_SIZE / 2 else "right"
        out.append((f"is the {o.name} on the left or the right?", side, "other"))
    elif vertical:
        side = "top" if cy < IMAGE_SIZE / 2 else "bottom"
        out.append((f"is the {o.name} at the top or the bottom?", side, "other"))
    return out


def make_scene(seed: int, index: int = 0, split: str = "train") -> Scene:
    """Scene number `index` of `split` for `seed`; the same arguments give the same scene."""
    rng = np.random.default_rng([seed, SPLIT_OFFSET.get(split, 3_000_017), index])
    canvas = _background(rng)
    objects = []
    for kind, color, x, y, s in _place_objects(rng):
        mask = _shape_mask(kind, x, y, s)
        rgb = np.array(COLORS[color], dtype=float) + rng.uniform(-12, 12, size=3)
        shade = rng.normal(0, 6, size=mask.shape + (1,))  # a little texture inside the shape
        canvas = np.where(mask[..., None], rgb + shade, canvas)
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = (x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1)
        objects.append(ShapeObject(kind, color, bbox, int(mask.sum())))
    objects.sort(key=lambda o: (o.center[0], o.center[1]))
    image = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), "RGB")
    return Scene(
        image=image,
        objects=tuple(objects),
        captions=_captions(objects),
        questions=tuple(_questions(objects, rng)),
    )


def _question_type(question: str) -> str:
    """VQA-style question type: the question's leading words."""
    for prefix in ("what color is the", "what shape is the", "how many", "is there", "is the"):
        if question.startswith(prefix):
            return prefix
    return "none of the above"


def write_shapes(
    out: str | Path, split: str, count: int, seed: int, progress: bool = False
) -> None:
    """Write `count` scenes of `split` in the official COCO 2014 / VQA v2 files and layout."""
    paths = split_paths(out, split)
    paths["images"].mkdir(parents=True, exist_ok=True)
    name = f"{split}2014"
    info = {"description": f"mmcam synthetic shapes, seed {seed}", "version": "1.0", "year": 2014}
    licenses = [
        {"id": 1, "name": "CC0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}
    ]
    categories = [{"id": i + 1, "name": k, "supercategory": "shape"} for i, k in enumerate(KINDS)]
    images, captions, instances, questions, answers = [], [], [], [], []
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    indices = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"shapes {split}", unit="img")
    for i in indices:
        image_id = i + 1
        scene = make_scene(seed, i, split)
        file_name = f"COCO_{name}_{image_id:012d}.png"
        scene.image.save(paths["images"] / file_name)
        images.append(
            {
                "license": 1,
                "file_name": file_name,
                "height": IMAGE_SIZE,
                "width": IMAGE_SIZE,
                "id": image_id,
            }
        )
        for caption in scene.captions:
            captions.append({"image_id": image_id, "id": len(captions) + 1, "caption": caption})
        for o in scene.objects:
            x, y, w, h = o.bbox
            instances.append(
                {
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "area": o.area,
                    "iscrowd": 0,
                    "image_id": image_id,
                    "bbox": [x, y, w, h],
                    "category_id": KINDS.index(o.kind) + 1,
                    "id": len(instances) + 1,
                    "color": o.color,
                }
            )
        for k, (question, answer, answer_type) in enumerate(scene.questions):
            question_id = image_id * 100 + k
            questions.append(
                {"image_id": image_id, "question": question, "question_id": question_id}
            )
            answers.append(
                {
                    "question_type": _question_type(question),
                    "multiple_choice_answer": answer,
                    "answers": [
                        {"answer": answer, "answer_confidence": "yes", "answer_id": j + 1}
                        for j in range(10)
                    ],
                    "image_id": image_id,
                    "answer_type": answer_type,
                    "question_id": question_id,
                }
            )
    write_json(
        paths["captions"],
        {"info": info, "images": images, "licenses": licenses, "annotations": captions},
        indent=None,
    )
    write_json(
        paths["instances"],
        {
            "info": info,
            "images": images,
            "licenses": licenses,
            "annotations": instances,
            "categories": categories,
        },
        indent=None,
    )
    vqa_header = {"info": info, "license": licenses[0], "data_type": "mscoco", "data_subtype": name}
    write_json(
        paths["questions"],
        {**vqa_header, "task_type": "Open-Ended", "questions": questions},
        indent=None,
    )
    write_json(paths["vqa_annotations"], {**vqa_header, "annotations": answers}, indent=None)


def scene_record(scene: Scene, file_name: str) -> dict:
    """A scene's ground truth as JSON: objects (kind, colour, COCO bbox), captions, questions."""
    return {
        "file_name": file_name,
        "objects": [
            {"kind": o.kind, "color": o.color, "bbox": list(o.bbox)} for o in scene.objects
        ],
        "captions": list(scene.captions),
        "questions": [
            {"question": q, "answer": a, "answer_type": t} for q, a, t in scene.questions
        ],
    }


def write_samples(out: str | Path, seed: int = 0, counts: tuple[int, ...] = (3, 2, 3, 1)) -> Path:
    """Write a few held-out scenes (split "test") as PNGs plus `samples.json` with each one's
    objects (kind, colour, COCO bbox), captions and questions; one scene per entry of `counts`
    (its number of objects), for demos and `make run`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, index = [], 0
    for wanted in counts:
        while True:
            scene = make_scene(seed, index, "test")
            index += 1
            if len(scene.objects) == wanted and len(scene.questions) >= 4:
                break
        file_name = f"shapes_{len(records) + 1}.png"
        scene.image.save(out / file_name)
        records.append({"index": index - 1, **scene_record(scene, file_name)})
    info = {"description": f"held-out shapes scenes: make_scene({seed}, index, 'test')"}
    return write_json(out / "samples.json", {"info": info, "samples": records}, indent=1)
