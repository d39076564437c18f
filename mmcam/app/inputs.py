"""The demo's input checks: every way a person can get an image, a question, a method or
a threshold wrong is an `InputError` that says what to do; and the bundled examples."""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmcam.core.bundled import BUNDLED
from mmcam.core.protocols import VQAModel
from mmcam.data.files import read_json
from mmcam.data.images import BOMB_ERRORS, bomb_limit_enforced, to_rgb
from mmcam.methods import registry
from mmcam.methods.deprecated import deprecated_list

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_IMAGE_SIDE",
    "WHOLE_CAPTION",
    "Example",
    "InputError",
    "bundled_examples",
    "check_question",
    "chosen_word",
    "read_image",
]


MODELS = BUNDLED
DEFAULT_SAMPLES = MODELS / "samples"
MAX_IMAGE_SIDE = 4096  # pixels: a larger image is refused (the models see 128 x 128 anyway)
MAX_UPLOAD = "20mb"  # Gradio's own upload limit (launch(max_file_size=...)), checked first
WHOLE_CAPTION = "whole caption"


def __getattr__(name: str) -> object:
    """The demo's former method lists, read from the registry (deprecated): METHODS (shown name
    -> id of the methods the caption explainer runs) and ANY_MODEL_METHODS (the ids offered for
    every model: no ReLU rule, no convolutional layer needed)."""
    if name == "METHODS":
        names = deprecated_list(__name__, name, registry.methods(explainer="captions"), "name")
        return {shown: method_id for method_id, shown in names.items()}
    if name == "ANY_MODEL_METHODS":
        records = registry.methods(kind=("gradient", "perturbation"))
        return deprecated_list(__name__, name, records, None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class InputError(ValueError):
    """Something the person gave the demo cannot be used; the message says what to do."""


ImageSource = str | os.PathLike | dict | Image.Image | np.ndarray | None


# ----------------------------------------------------------------------------- checking input


def read_image(source: ImageSource) -> Image.Image:
    """The uploaded image as RGB (EXIF rotation applied), or `InputError` saying why not.

    `source` is a file path, Gradio's record of an uploaded file (a dict with its `path`, or a
    `data:` URL), a PIL image or an `[H, W(, C)]` uint8 array. An image over `MAX_IMAGE_SIDE`
    pixels a side is refused before it is decoded.
    """
    if isinstance(source, dict):
        source = source.get("path") or _decode_data_url(source.get("url"))
    if source is None or (isinstance(source, str) and not source.strip()):
        raise InputError("No image: upload an image or pick one of the examples.")
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise InputError(f"An array of shape {source.shape} is not an image.")
        source = Image.fromarray(np.ascontiguousarray(source).astype(np.uint8))
    if isinstance(source, Image.Image):
        _check_size(source.size, "The image")
        return to_rgb(source)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"No image: {path.name} was not uploaded; upload it again.")
    try:
        with bomb_limit_enforced(), Image.open(path) as image:
            _check_size(image.size, path.name)  # read from the header, before decoding
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except InputError:
        raise
    except BOMB_ERRORS as error:
        raise _too_many_pixels(path.name, error) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(
            f"{path.name} is not an image the demo can read ({type(error).__name__}); upload a "
            "PNG, JPEG, WebP, GIF, BMP or TIFF file."
        ) from error


def _decode_data_url(url: str | None) -> Image.Image | None:
    """The image in a `data:image/...;base64,` URL (how a browser may send a pasted image)."""
    if not url or not url.startswith("data:"):
        return None
    try:
        with bomb_limit_enforced():
            image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            _check_size(image.size, "The pasted image")
            image.load()
        return image
    except InputError:
        raise
    except BOMB_ERRORS as error:
        raise _too_many_pixels("The pasted image", error) from error
    except (UnidentifiedImageError, OSError, ValueError, IndexError) as error:
        raise InputError("The pasted data is not an image the demo can read.") from error


def _too_many_pixels(name: str, error: Exception) -> InputError:
    return InputError(
        f"{name} has more pixels than the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} "
        f"({error}); the demo takes images up to {MAX_IMAGE_SIDE} pixels a side."
    )


def _check_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE:
        raise InputError(
            f"{name} is {width} x {height} pixels; the demo takes images up to {MAX_IMAGE_SIDE} "
            "pixels a side (the models look at 128 x 128). Resize it and upload it again."
        )
    if min(width, height) < 1:
        raise InputError(f"{name} is empty ({width} x {height} pixels).")


def check_question(model: VQAModel, question: str | None) -> tuple[str, list[str]]:
    """The question, stripped, and its words the model does not know.

    An empty question, or one with none of the model's words, raises `InputError` naming the
    unknown words (a question of unknown words would be answered from the image alone)."""
    question = (question or "").strip()
    if not question:
        raise InputError("Empty question: type a question about the image, or pick an example.")
    words = re.findall(r"\w+", question.lower())
    unknown = [w for w in model.unknown_words(question) if any(ch.isalnum() for ch in w)]
    if not words or set(words) <= set(unknown):
        listed = ", ".join(f"'{word}'" for word in (unknown or [question]))
        raise InputError(
            f"The model knows none of the words of this question (unknown: {listed}). "
            f"{_known_words_hint(model)}"
        )
    return question, unknown


def _known_words_hint(model: VQAModel) -> str:
    vocab = getattr(model, "vocab", None)
    words = [w for w in getattr(vocab, "itos", []) if w.isalpha()]
    if not words:
        return "Ask with words from the model's training questions."
    return f"It knows {len(words)} words, such as: {', '.join(words[:20])}."


def checked_method(
    name: str | None, offered: Sequence[str] | None = None, default: str = "gradcam"
) -> tuple[str, str]:
    """(shown name, registry id) of a method given by either (`default` when None; a former id
    is accepted with a DeprecationWarning); a method outside `offered` (ids; None: every
    registered method) is refused naming those that are."""
    name = name or default
    by_name = {record.name: record.id for record in registry.methods()}
    method_id = by_name.get(name) or registry.resolve(name)
    offered = registry.ids() if offered is None else list(offered)
    if method_id not in registry.METHODS:
        shown = ", ".join(registry.get(i).name for i in offered)
        raise InputError(f"Unknown method {name!r}; choose one of {shown}.")
    record = registry.get(method_id)
    if record.id not in offered:
        shown = ", ".join(registry.get(i).name for i in offered)
        offered_to = "the convolutional models only" if record.kind == "rule" else "other models"
        raise InputError(
            f"{record.name} is offered for {offered_to}; explain this model with {shown}."
        )
    return record.name, record.id


def checked_threshold(value: float | None, default: float = 0.15) -> float:
    value = default if value is None else float(value)
    if not 0 <= value < 1:
        raise InputError(
            f"The box threshold is a fraction of the map's peak in [0, 1), not {value}."
        )
    return value


# ----------------------------------------------------------------------------- examples


@dataclass
class Example:
    """A bundled sample image and the questions that come with it."""

    image: Path
    questions: list[str] = field(default_factory=list)


def bundled_examples(folder: str | Path = DEFAULT_SAMPLES) -> list[Example]:
    """The sample images of `folder` (sorted by name) with their questions, read from
    `samples.json` beside them: `{"samples": [{"file_name", "questions": [{"question"}]}]}`
    (questions may also be plain strings)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    questions: dict[str, list[str]] = {p.name: [] for p in images}
    listing = folder / "samples.json"
    for record in read_json(listing).get("samples", []) if listing.is_file() else []:
        for asked in record.get("questions", []):
            text = asked.get("question") if isinstance(asked, dict) else asked
            if isinstance(text, str) and record.get("file_name") in questions:
                questions[record["file_name"]].append(text)
    return [Example(p, questions[p.name]) for p in images]


def chosen_word(choices: list[str], wanted: str | int | None) -> str:
    """The choice named by `wanted` (a label, a word index, or None for the whole caption)."""
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        return choices[wanted + 1] if 0 <= wanted < len(choices) - 1 else WHOLE_CAPTION
    return wanted if wanted in choices else WHOLE_CAPTION
