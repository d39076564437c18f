"""What a demo request returns, and how it is drawn and saved: overlays with boxes, and the
PNG / NPZ files a person downloads."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from mmcam.boxes.from_maps import Box, boxes_from_map
from mmcam.boxes.refine import RefineSettings, is_flat, refined_box
from mmcam.explainers.vqa import VQAExplanation
from mmcam.visualize import overlay

KEEP_FILES_SECONDS = 3600  # download folders older than this are removed at the next request

__all__ = ["AnswerResult", "CaptionResult", "box_text"]


# ----------------------------------------------------------------------------- results


@dataclass
class CaptionResult:
    """What the captioning tab shows for one image."""

    caption: str
    words: list[str]
    choices: list[str]  # WHOLE_CAPTION, then "1: a", "2: red", ... (one per word)
    selected: str  # the choice whose map is `heat_map`
    method: str  # shown name
    heat_map: np.ndarray  # uint8 [H, W, 3]: the selected map over the image, its box drawn
    boxes: list[dict]  # [{"label", "bbox": [x, y, w, h], "score", "refined"}] in the uploaded
    # image's pixels: the refined box (map + image) first when asked for, then the map's own
    gallery: list[tuple[Path, str]]  # every word's overlay (a JPEG) and its choice label
    files: list[Path]  # PNG of `heat_map`, then caption-maps.npz
    word_maps: Tensor  # [T, S, S] in [0, 1], at the model's input resolution
    caption_map: Tensor  # [S, S]
    image_size: tuple[int, int]  # (height, width) of the uploaded image

    @property
    def heat_map_file(self) -> Path:
        """`heat_map` as a PNG."""
        return self.files[0]


@dataclass
class AnswerResult:
    """What the VQA tab shows for one question."""

    question: str
    answers: dict[str, float]  # top answers -> probability, best first
    choices: list[str]
    selected: str  # the answer whose maps are shown
    method: str
    heat_map: np.ndarray  # uint8 [H, W, 3]: evidence for `selected`, its box drawn
    counterfactual: np.ndarray  # uint8 [H, W, 3]: what argues against `selected`
    boxes: list[dict]
    files: list[Path]  # PNGs of `heat_map` and `counterfactual`, then vqa-maps.npz
    notes: str  # e.g. the words the model did not know and ignored
    mapped: list[str]  # the answers `maps` explain: all of `choices` (the rule methods from a
    # row per answer, the others from one pass or one sweep)
    maps: Tensor  # [len(mapped), S, S] in [0, 1], at the model's input resolution
    counterfactual_maps: Tensor  # [k, S, S]: one per answer in `choices`
    image_size: tuple[int, int]
    # an attention method of a single-stream transformer (ViLT): each question word and the
    # relevance `selected` gave it, scaled to [0, 1]; None for other models and methods
    question_relevance: list[tuple[str, float]] | None = None

    @property
    def heat_map_file(self) -> Path:
        """`heat_map` as a PNG."""
        return self.files[0]

    @property
    def counterfactual_file(self) -> Path:
        """`counterfactual` as a PNG."""
        return self.files[1]


def box_text(boxes: list[dict]) -> str:
    """One line for a person: the boxes (a refined one labelled map + image), or why there is
    none."""
    if not boxes:
        return "No box: the map is flat (no evidence at this layer)."

    def corners(box: dict) -> str:
        return "[" + ", ".join(str(round(v)) for v in box["bbox"]) + "]"

    refined = [box for box in boxes if box["refined"]]
    own = [box for box in boxes if not box["refined"]]
    parts = []
    if refined:
        parts.append(
            f"[x, y, w, h] = {corners(refined[0])} in your image's pixels, map + image (the map "
            "seeded a segmentation of the image)"
        )
    if own:
        start = "the map's own box: " if refined else "[x, y, w, h] = "
        where = "" if refined else " in your image's pixels"
        parts.append(
            f"{start}{corners(own[0])}{where} (mean map value inside: {own[0]['score']:.2f})"
        )
    return "; ".join(parts)


def map_boxes(
    heat: Tensor,
    threshold: float,
    size: tuple[int, int],
    label: str,
    picture: Image.Image | None = None,
    refine: RefineSettings | None = None,
) -> list[dict]:
    """The map's own box at `threshold`; with `refine` (and the `picture`), first the box
    refined from the picture with the map as seeds (map + image, `"refined": True`)."""
    found: list[Box] = boxes_from_map(heat, threshold, keep="largest", image_size=size)
    if refine is not None and picture is not None and not is_flat(heat):
        refined = refined_box(picture.convert("RGB"), heat, refine)
        found = ([refined] if refined is not None else []) + found
    return [
        {"label": label, "bbox": b.to_list(), "score": round(b.score, 4), "refined": b.refined}
        for b in found
    ]


def display_size(width: int, height: int, sides: tuple[int, int]) -> tuple[int, int]:
    """(width, height) with the longer side clamped to `sides`, aspect kept."""
    longest = max(width, height)
    scale = min(max(longest, sides[0]), sides[1]) / longest
    return max(round(width * scale), 1), max(round(height * scale), 1)


def draw_overlay(
    picture: Image.Image,
    heat: Tensor,
    boxes: list[dict],
    sides: tuple[int, int],
    shown: Image.Image | None = None,
) -> np.ndarray:
    """`heat` over `picture` resized for display (`shown`, when already resized), with `boxes`
    (original pixels) outlined."""
    width, height = display_size(picture.width, picture.height, sides)
    if shown is None or shown.size != (width, height):
        shown = picture.resize((width, height), Image.BILINEAR)
    drawing = Image.fromarray(overlay(shown, heat, alpha=0.5))
    pen = ImageDraw.Draw(drawing)
    sx, sy = width / picture.width, height / picture.height
    line = max(2, round(max(width, height) / 160))
    for box in boxes:  # the refined box (map + image) in green, the map's own in white
        x, y, w, h = box["bbox"]
        corners = [x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1]
        colour = (0, 230, 0) if box.get("refined") else (255, 255, 255)
        pen.rectangle(corners, outline=(0, 0, 0), width=line + 2)
        pen.rectangle(corners, outline=colour, width=line)
    return np.asarray(drawing)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "map"


def save_image(path: Path, image: np.ndarray) -> Path:
    """A PNG (fast deflate), or a JPEG for a `.jpg` path, written atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".jpg":
        Image.fromarray(image).save(temporary, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(temporary, format="PNG", compress_level=1)
    temporary.replace(path)
    return path


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Arrays as a compressed `.npz` (fast deflate), written atomically (temp file + rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    temporary.replace(path)
    return path


def question_words(explained: VQAExplanation, answer: int) -> list[tuple[str, float]]:
    """The question's tokens (padding and the tokenizer's [CLS] / [SEP] left out) and the
    relevance answer `answer` gave each, scaled to [0, 1] by the largest: the page shades them."""
    tokens = explained.question_tokens[0]
    values = explained.question_relevance[0, answer, : len(tokens)].clamp(min=0)
    special = {"[PAD]", "[CLS]", "[SEP]"}
    kept = [(t, float(v)) for t, v in zip(tokens, values, strict=True) if t not in special]
    top = max((v for _, v in kept), default=0.0)
    return [(t, v / top if top > 0 else 0.0) for t, v in kept]


def request_folder(work_dir: Path) -> Path:
    """A new folder in `work_dir` for one request's downloads; folders older than an hour are
    removed."""
    now = time.time()
    for old in work_dir.iterdir():
        try:
            if old.is_dir() and now - old.stat().st_mtime > KEEP_FILES_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    return Path(tempfile.mkdtemp(dir=work_dir))
