"""Images: loading any file as 8-bit RGB, resizing and normalising it for the
reference models, and undoing that for drawing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from mmcam.data.annotations import (
    split_paths,
)
from mmcam.data.files import BadData, file_in_folder

IMAGE_SIZE = 128
MEAN = 0.5  # pixels in [0, 1] are mapped to (x - MEAN) / STD
STD = 0.25


# ----------------------------------------------------------------------------- images


@contextmanager
def bomb_limit_enforced() -> Iterator[None]:
    """PIL's decompression-bomb warning (an image over `PIL.Image.MAX_IMAGE_PIXELS` pixels, up
    to twice that) raised as the error PIL raises beyond: a huge image is refused, never
    decoded into memory."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit RGB (grayscale, RGBA, palette, CMYK and 16-bit converted).

    A missing, unreadable, truncated or non-image file, or one over PIL's decompression-bomb
    limit, raises `BadData` naming the file and what was wrong."""
    path = Path(path)
    if not path.is_file():
        raise BadData(f"image {path} does not exist")
    try:
        with bomb_limit_enforced(), Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except BOMB_ERRORS as error:
        raise BadData(
            f"{path} has more pixels than PIL's decompression-bomb limit "
            f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): {error}"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadData(f"{path} is not a readable image: {error}") from error


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
        return file_in_folder(folder, file_name, f"image {image_id}'s file_name")
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
