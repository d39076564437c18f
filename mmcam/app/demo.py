"""What the demo does, without the page: check what a person gave it, run the explainers, draw
the overlays and boxes, and write the files they can download.

`demos/app.py` only lays out a Gradio page over `Demo.caption` and `Demo.answer`; everything a
person can get wrong is checked here and raised as `InputError`, whose message says what was
wrong and what to do (the page shows it as an error message):

* no image, a file that is not an image, an image larger than `MAX_IMAGE_SIDE` pixels a side;
* an empty question, a question with none of the model's words (the unknown words are named);
* an unknown method or a box threshold outside [0, 1).

Maps are computed at the model's input resolution (128 x 128 for the reference models) and
drawn over the image at its own aspect ratio; boxes are COCO `[x, y, w, h]` in the pixels of
the image as uploaded. The downloadable `.npz` holds the maps at input resolution (resize them
with `mmcam.localize.resize_map(maps, image_size)` to get original pixels).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from mmcam.captioning import CaptionExplainer, WordReplicas, teacher_forced
from mmcam.datasets import preprocess, read_json, to_rgb
from mmcam.explanation import Explanation, normalize_maps
from mmcam.localize import Box, boxes_from_map
from mmcam.methods import GRADIENT_METHODS
from mmcam.perturbation import occlusion
from mmcam.pixel_methods import guided_backprop, guided_grad_cam
from mmcam.protocols import CaptionModel, VQAModel
from mmcam.tap import Grid
from mmcam.targets import ClassLogit
from mmcam.visualize import overlay
from mmcam.vqa import VQAExplainer

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_IMAGE_SIDE",
    "METHODS",
    "WHOLE_CAPTION",
    "AnswerResult",
    "CaptionResult",
    "Demo",
    "Example",
    "InputError",
    "box_text",
    "bundled_examples",
    "check_question",
    "read_image",
]

MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT_SAMPLES = MODELS / "samples"
MAX_IMAGE_SIDE = 4096  # pixels: a larger image is refused (the models see 128 x 128 anyway)
MAX_UPLOAD = "20mb"  # Gradio's own upload limit (launch(max_file_size=...)), checked first
DISPLAY_SIDE = (384, 768)  # the shown overlay's longer side is the image's, clamped to this
GALLERY = (192, 192)  # longer side of each word's overlay in the gallery
WHOLE_CAPTION = "whole caption"
METHODS = {
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcam++",
    "Counterfactual": "counterfactual",
    "HiResCAM": "hirescam",
    "Guided backprop": "guided_backprop",
    "Guided Grad-CAM": "guided_grad_cam",
    "Occlusion": "occlusion",
}
# Occlusion (window, stride) in model-input pixels; shapes are 20-40 px. It costs one forward
# pass per window position and explained score: a VQA answer gets a fine grid (225 positions),
# a caption's words (up to ~15 of them, each its own score) a coarse one (49 positions).
VQA_OCCLUSION = (16, 8)
CAPTION_OCCLUSION = (32, 16)
KEEP_FILES_SECONDS = 3600  # download folders older than this are removed at the next request


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
        with Image.open(path) as image:
            _check_size(image.size, path.name)  # read from the header, before decoding
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        raise InputError(
            f"{path.name} is too large ({error}); the demo takes images up to "
            f"{MAX_IMAGE_SIDE} pixels a side."
        ) from error
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
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        _check_size(image.size, "The pasted image")
        image.load()
        return image
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, IndexError) as error:
        raise InputError("The pasted data is not an image the demo can read.") from error


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


def _method(name: str | None, pixel_methods: bool = True) -> tuple[str, str]:
    """(shown name, method key) of a method given by either; without `pixel_methods` only the
    gradient methods are allowed."""
    name = name or "Grad-CAM"
    for shown, key in METHODS.items():
        if name in (shown, key):
            if not pixel_methods and key not in GRADIENT_METHODS:
                allowed = [s for s, k in METHODS.items() if k in GRADIENT_METHODS]
                raise InputError(
                    f"{shown} is offered for the convolutional models only; explain this model "
                    f"with {', '.join(allowed)}."
                )
            return shown, key
    raise InputError(f"Unknown method {name!r}; choose one of {', '.join(METHODS)}.")


def _threshold(value: float | None) -> float:
    value = 0.15 if value is None else float(value)
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
    boxes: list[dict]  # [{"label", "bbox": [x, y, w, h], "score"}] in the uploaded image's pixels
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
    mapped: list[str]  # the answers `maps` explain: all of `choices` for the gradient methods,
    # only `selected` for the pixel methods (they cost a pass per answer)
    maps: Tensor  # [len(mapped), S, S] in [0, 1], at the model's input resolution
    counterfactual_maps: Tensor  # [k, S, S]: one per answer in `choices`
    image_size: tuple[int, int]

    @property
    def heat_map_file(self) -> Path:
        """`heat_map` as a PNG."""
        return self.files[0]

    @property
    def counterfactual_file(self) -> Path:
        """`counterfactual` as a PNG."""
        return self.files[1]


# ----------------------------------------------------------------------------- the demo


class Demo:
    """The captioner and the VQA model behind the demo, with their explainers.

    Each model explains one request at a time (a tap hooks the shared model, so two requests at
    once would see each other's hooks): the calls hold a per-model lock. Download files go to
    `work_dir` (a new temporary folder by default), one folder per request.
    """

    def __init__(
        self,
        captioner: CaptionModel,
        vqa_model: VQAModel,
        *,
        captioner_layer: str | nn.Module | None = None,
        vqa_layer: str | nn.Module | None = None,
        preprocess_image: Callable[[Image.Image], Tensor] | None = None,
        vqa_preprocess: Callable[[Image.Image], Tensor] | None = None,
        captioner_grid: Grid | None = None,
        vqa_grid: Grid | None = None,
        work_dir: str | Path | None = None,
    ) -> None:
        self.captioner, self.vqa_model = captioner, vqa_model
        self.captioner_layer = captioner_layer or _explained_layer(captioner)
        self.vqa_layer = vqa_layer or _explained_layer(vqa_model)
        self.caption_explainer = CaptionExplainer(
            captioner, self.captioner_layer, to_grid=captioner_grid
        )
        self.vqa_explainer = VQAExplainer(vqa_model, self.vqa_layer, to_grid=vqa_grid)
        self.preprocess_image = preprocess_image or _default_preprocess(captioner)
        self.vqa_preprocess = vqa_preprocess or self.preprocess_image
        # Guided Grad-CAM and occlusion drive the model with our own token tensors and a
        # convolutional layer; transformer layers (a `to_grid`) get the gradient methods only.
        self.pixel_methods = {
            "captioning": captioner_grid is None,
            "VQA": vqa_grid is None,
        }
        if work_dir is None:  # our own temporary folder: removed with the demo
            work_dir = tempfile.mkdtemp(prefix="mmcam-demo-")
            weakref.finalize(self, shutil.rmtree, work_dir, ignore_errors=True)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._caption_lock, self._vqa_lock = threading.Lock(), threading.Lock()

    def methods(self, task: str) -> list[str]:
        """The shown names of the methods offered for `task` ("captioning" or "VQA")."""
        return [
            shown
            for shown, key in METHODS.items()
            if self.pixel_methods[task] or key in GRADIENT_METHODS
        ]

    @classmethod
    def load(
        cls,
        models: str | Path = MODELS,
        *,
        hf_captioner: str | None = None,
        hf_vqa: str | None = None,
        hf_answers: Sequence[str] | None = None,
        **kwargs: object,
    ) -> Demo:
        """The demo over the checkpoints `models/captioner` and `models/vqa`, or over Hugging
        Face models (a hub name or a local folder): BLIP captioning for `hf_captioner`, ViLT
        or BLIP VQA for `hf_vqa` (BLIP scores the candidate `hf_answers`)."""
        from mmcam.dataset_runs import load_run_captioner, load_run_vqa

        models = Path(models)
        captioner = load_run_captioner(models / "captioner", hf=hf_captioner)
        vqa = load_run_vqa(models / "vqa", hf=hf_vqa, answers=hf_answers)
        return cls(
            captioner.model,
            vqa.model,
            captioner_layer=captioner.layer,
            vqa_layer=vqa.layer,
            preprocess_image=captioner.preprocess,
            vqa_preprocess=vqa.preprocess,
            captioner_grid=captioner.to_grid,
            vqa_grid=vqa.to_grid,
            **kwargs,
        )

    # ------------------------------------------------------------------ captioning

    def caption(
        self,
        image: ImageSource,
        method: str | None = "Grad-CAM",
        word: str | int | None = None,
        threshold: float | None = 0.15,
    ) -> CaptionResult:
        """Caption `image`, map every word and the whole caption by `method`, and draw the map
        of `word` (a choice label, a word index, or None / WHOLE_CAPTION) with its box."""
        picture = read_image(image)
        shown, key = _method(method, self.pixel_methods["captioning"])
        threshold = _threshold(threshold)
        inputs = self.preprocess_image(picture)[None]  # [1, 3, S, S]
        with self._caption_lock:
            maps = self._caption_maps(inputs, key)
        text, words, word_maps, caption_map, raw_words, raw_caption, scores = maps
        choices = [WHOLE_CAPTION] + [f"{i + 1}: {w}" for i, w in enumerate(words)]
        selected = _choose(choices, word)
        chosen = (
            caption_map if selected == WHOLE_CAPTION else word_maps[choices.index(selected) - 1]
        )
        size = (picture.height, picture.width)
        boxes = _boxes(chosen, threshold, size, selected)
        heat_map = _draw(picture, chosen, boxes, DISPLAY_SIDE)
        folder = self._request_folder()
        gallery = []  # thumbnails as JPEG: 10x faster to write than PNG, and only for looking
        thumbnail = picture.resize(_display_size(*picture.size, GALLERY), Image.BILINEAR)
        for index, (word_map, label) in enumerate(zip(word_maps, choices[1:], strict=True)):
            drawn = _draw(picture, word_map, [], GALLERY, thumbnail)
            path = folder / f"word-{index + 1:02d}-{_slug(words[index])}.jpg"
            gallery.append((_save_image(path, drawn), label))
        files = [
            _save_image(folder / f"caption-{_slug(selected)}-{key}.png", heat_map),
            _save_npz(
                folder / "caption-maps.npz",
                caption=np.array(text),
                words=np.array(words),
                word_maps=word_maps.numpy(),
                caption_map=caption_map.numpy(),
                word_raw=raw_words.numpy(),
                caption_raw=raw_caption.numpy(),
                word_scores=scores.numpy(),
                method=np.array(key),
                image_size=np.array(size),
                selected=np.array(selected),
                boxes=np.array([b["bbox"] for b in boxes], dtype=np.float32).reshape(-1, 4),
            ),
        ]
        return CaptionResult(
            text, words, choices, selected, shown, heat_map, boxes, gallery, files,
            word_maps, caption_map, size,
        )  # fmt: skip

    def _caption_maps(
        self, inputs: Tensor, method: str
    ) -> tuple[str, list[str], Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Caption text, words, word maps `[T, S, S]`, caption map `[S, S]`, their raw maps and
        the words' log-probabilities `[T]`."""
        if method in GRADIENT_METHODS:
            explained = self.caption_explainer.explain(inputs, method=method)
            words = explained.word_labels(0)
            return (
                explained.texts[0],
                words,
                explained.words.maps[0, : len(words)],
                explained.caption.maps[0],
                explained.words.raw[0, : len(words)],
                explained.caption.raw[0],
                explained.words.scores[0, : len(words)],
            )
        model = self.captioner
        caption = self.caption_explainer.generate(inputs)[0]
        if not caption:
            raise InputError("The model gave an empty caption for this image; try another image.")
        count = len(caption)
        # A row per word; guided backprop and guided Grad-CAM add a row for the whole caption
        # (the words' summed log-probability: their rules are not linear). Occlusion is linear in
        # the scores, so the caption's drop is the sum of the words' drops and needs no row.
        replicas = WordReplicas.of(model, [caption], False, inputs.device)
        rows = replicas.score_rows(whole_captions=method != "occlusion")
        explained = _pixel_method(
            method,
            teacher_forced(model),
            inputs[rows.images],
            rows.target,
            model,
            self.captioner_layer,
            (rows.tokens, rows.steps),
            CAPTION_OCCLUSION,
        )
        words = model.words(caption)
        if method == "occlusion":
            drop = explained.raw[:, 0].sum(dim=0)  # [S, S]: the caption's signed drop
            caption_map = normalize_maps(drop.clamp(min=0))[0]
            caption_raw = drop
        else:
            caption_map, caption_raw = explained.maps[count], explained.raw[count]
        return (
            " ".join(words),
            words,
            explained.maps[:count],
            caption_map,
            explained.raw[:count, 0] if method == "occlusion" else explained.raw[:count],
            caption_raw,
            explained.scores[:count],
        )

    # ------------------------------------------------------------------ VQA

    def answer(
        self,
        image: ImageSource,
        question: str | None,
        method: str | None = "Grad-CAM",
        answer: str | None = None,
        threshold: float | None = 0.15,
        top_k: int = 5,
    ) -> AnswerResult:
        """Answer `question` about `image`: the top-k answers with probabilities, the map and box
        of `answer` (the best one when None or not among them) by `method`, and its
        counterfactual Grad-CAM map (what argues against it)."""
        picture = read_image(image)
        question, unknown = check_question(self.vqa_model, question)
        shown, key = _method(method, self.pixel_methods["VQA"])
        threshold = _threshold(threshold)
        inputs = self.vqa_preprocess(picture)[None]
        gradient = key in GRADIENT_METHODS
        with self._vqa_lock:
            explained = self.vqa_explainer.explain(
                inputs, [question], top_k=top_k, method=key if gradient else "gradcam",
                counterfactual=True,
            )  # fmt: skip
            answers = explained.answers[0]
            selected = answer if answer in answers else answers[0]
            if gradient:  # every top answer's map came from the one backward pass
                mapped, maps, raw = answers, explained.maps.maps[0], explained.maps.raw[0]
            else:  # pixel methods cost a pass per answer: only the selected one
                pixel = self._vqa_pixel_map(inputs, question, selected, key)
                mapped, maps, raw = [selected], pixel.maps, pixel.raw
        probabilities = explained.probabilities[0].tolist()
        against = explained.counterfactual.maps[0, answers.index(selected)]
        heat = maps[mapped.index(selected)]
        size = (picture.height, picture.width)
        boxes = _boxes(heat, threshold, size, selected)
        heat_map = _draw(picture, heat, boxes, DISPLAY_SIDE)
        counterfactual = _draw(picture, against, [], DISPLAY_SIDE)
        notes = []
        if answer not in (None, "", selected):
            notes.append(
                f"'{answer}' is not among the top {len(answers)} answers; showing the best."
            )
        if unknown:
            words = ", ".join(f"'{w}'" for w in unknown)
            notes.append(f"Words the model does not know (read as unknown): {words}.")
        folder = self._request_folder()
        files = [
            _save_image(folder / f"answer-{_slug(selected)}-{key}.png", heat_map),
            _save_image(folder / f"counterfactual-{_slug(selected)}.png", counterfactual),
            _save_npz(
                folder / "vqa-maps.npz",
                question=np.array(question),
                answers=np.array(answers),
                probabilities=np.array(probabilities, dtype=np.float32),
                mapped_answers=np.array(mapped),
                maps=maps.numpy(),
                raw=raw.numpy(),
                counterfactual_maps=explained.counterfactual.maps[0].numpy(),
                method=np.array(key),
                image_size=np.array(size),
                selected=np.array(selected),
                boxes=np.array([b["bbox"] for b in boxes], dtype=np.float32).reshape(-1, 4),
            ),
        ]
        return AnswerResult(
            question, dict(zip(answers, probabilities, strict=True)), answers, selected, shown,
            heat_map, counterfactual, boxes, files, " ".join(notes), mapped, maps,
            explained.counterfactual.maps[0], size,
        )  # fmt: skip

    def _vqa_pixel_map(
        self, inputs: Tensor, question: str, answer: str, method: str
    ) -> Explanation:
        """Guided Grad-CAM or occlusion `Explanation` of one answer (maps `[1, S, S]`)."""
        model = self.vqa_model
        tokens = model.tokenize([question]).to(inputs.device)
        target = ClassLogit([list(model.answers).index(answer)])
        return _pixel_method(
            method, model, inputs, target, model, self.vqa_layer, (tokens,), VQA_OCCLUSION
        )

    # ------------------------------------------------------------------ files

    def _request_folder(self) -> Path:
        """A new folder for one request's downloads; folders older than an hour are removed."""
        now = time.time()
        for old in self.work_dir.iterdir():
            try:
                if old.is_dir() and now - old.stat().st_mtime > KEEP_FILES_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:  # another request removed it first
                pass
        return Path(tempfile.mkdtemp(dir=self.work_dir))


def _pixel_method(
    method: str,
    forward: Callable[..., Tensor],
    rows: Tensor,
    target: Callable[[Tensor], Tensor],
    model: nn.Module,
    layer: str | nn.Module,
    forward_args: Sequence[Tensor],
    grid: tuple[int, int],
) -> Explanation:
    """Guided backprop, guided Grad-CAM, or occlusion with (window, stride) `grid`, of one target
    per row."""
    if method == "guided_backprop":
        return guided_backprop(forward, rows, target, model=model, forward_args=forward_args)
    if method == "guided_grad_cam":
        return guided_grad_cam(forward, rows, target, model, layer, forward_args=forward_args)
    window, stride = grid
    return occlusion(
        forward, rows, target, window=window, stride=stride, batch_size=256, model=model,
        forward_args=forward_args,
    )  # fmt: skip


# ----------------------------------------------------------------------------- drawing and files


def _explained_layer(model: object) -> str:
    layer = getattr(model, "explained_layer", None)
    if layer is None:
        raise ValueError(
            f"{type(model).__name__} has no `explained_layer`; pass the layer to explain "
            "(captioner_layer= / vqa_layer=)"
        )
    return layer


def _default_preprocess(model: object) -> Callable[[Image.Image], Tensor]:
    size = getattr(getattr(model, "config", None), "image_size", 128)
    return lambda image: preprocess(image, size)


def _choose(choices: list[str], wanted: str | int | None) -> str:
    """The choice named by `wanted` (a label, a word index, or None for the whole caption)."""
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        return choices[wanted + 1] if 0 <= wanted < len(choices) - 1 else WHOLE_CAPTION
    return wanted if wanted in choices else WHOLE_CAPTION


def box_text(boxes: list[dict]) -> str:
    """One line for a person: the box, or why there is none."""
    if not boxes:
        return "No box: the map is flat (no evidence at this layer)."
    x, y, w, h = (round(v) for v in boxes[0]["bbox"])
    return (
        f"[x, y, w, h] = [{x}, {y}, {w}, {h}] in your image's pixels "
        f"(mean map value inside: {boxes[0]['score']:.2f})"
    )


def _boxes(heat: Tensor, threshold: float, size: tuple[int, int], label: str) -> list[dict]:
    found: list[Box] = boxes_from_map(heat, threshold, keep="largest", image_size=size)
    return [{"label": label, "bbox": b.to_list(), "score": round(b.score, 4)} for b in found]


def _display_size(width: int, height: int, sides: tuple[int, int]) -> tuple[int, int]:
    """(width, height) with the longer side clamped to `sides`, aspect kept."""
    longest = max(width, height)
    scale = min(max(longest, sides[0]), sides[1]) / longest
    return max(round(width * scale), 1), max(round(height * scale), 1)


def _draw(
    picture: Image.Image,
    heat: Tensor,
    boxes: list[dict],
    sides: tuple[int, int],
    shown: Image.Image | None = None,
) -> np.ndarray:
    """`heat` over `picture` resized for display (`shown`, when already resized), with `boxes`
    (original pixels) outlined."""
    width, height = _display_size(picture.width, picture.height, sides)
    if shown is None or shown.size != (width, height):
        shown = picture.resize((width, height), Image.BILINEAR)
    drawing = Image.fromarray(overlay(shown, heat, alpha=0.5))
    pen = ImageDraw.Draw(drawing)
    sx, sy = width / picture.width, height / picture.height
    line = max(2, round(max(width, height) / 160))
    for box in boxes:
        x, y, w, h = box["bbox"]
        corners = [x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1]
        pen.rectangle(corners, outline=(0, 0, 0), width=line + 2)
        pen.rectangle(corners, outline=(255, 255, 255), width=line)
    return np.asarray(drawing)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "map"


def _save_image(path: Path, image: np.ndarray) -> Path:
    """A PNG (fast deflate), or a JPEG for a `.jpg` path, written atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".jpg":
        Image.fromarray(image).save(temporary, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(temporary, format="PNG", compress_level=1)
    temporary.replace(path)
    return path


def _save_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Arrays as a compressed `.npz` (fast deflate), written atomically (temp file + rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    temporary.replace(path)
    return path
