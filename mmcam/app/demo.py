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
with `mmcam.core.box.resize_map(maps, image_size)` to get original pixels).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor, nn

from mmcam.app.inputs import (
    MODELS,
    WHOLE_CAPTION,
    ImageSource,
    InputError,
    check_question,
    checked_method,
    checked_threshold,
    chosen_word,
    read_image,
)
from mmcam.app.results import (
    AnswerResult,
    CaptionResult,
    display_size,
    draw_overlay,
    map_boxes,
    question_words,
    request_folder,
    save_image,
    save_npz,
    slug,
)
from mmcam.boxes.refine import RefineSettings
from mmcam.boxes.settings import box_settings, default_method
from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.core.tap import Grid
from mmcam.data.images import preprocess
from mmcam.explainers.attention_stack import (
    AttentionLayout,
    CaptionStackExplainer,
    VQAStackExplainer,
)
from mmcam.explainers.base import Explainer
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.hf.adapters import PatchTokenCaptionExplainer, PatchTokenVQAExplainer
from mmcam.explainers.vqa import VQAExplainer
from mmcam.methods import registry

__all__ = ["Demo"]


DISPLAY_SIDE = (384, 768)  # the shown overlay's longer side is the image's, clamped to this
GALLERY = (192, 192)  # longer side of each word's overlay in the gallery
# Occlusion's window and stride in model-input pixels (shapes are 20-40 px: 225 positions at
# 128 px) and RISE's masks. Every word of a caption and every top answer is mapped from the same
# sweep, so a caption costs what one answer does.
PERTURBATION = {"occlusion": {"window": 16, "stride": 8}, "rise": {"n_masks": 1000}}

# ----------------------------------------------------------------------------- the demo


class Demo:
    """The captioner and the VQA model behind the demo, with their explainers.

    With no method named, a request gets the default method of `models/box_settings.json`
    (chosen on val among the methods that pass the sanity checks), read at the layer chosen
    there for the model's architecture; every other method reads `captioner_layer` /
    `vqa_layer` (the model's own by default). Box thresholds left as None are the method's.
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
        captioner_attention: AttentionLayout | None = None,
        vqa_attention: AttentionLayout | None = None,
        work_dir: str | Path | None = None,
    ) -> None:
        self.captioner, self.vqa_model = captioner, vqa_model
        self.captioner_layer = captioner_layer or _explained_layer(captioner)
        self.vqa_layer = vqa_layer or _explained_layer(vqa_model)
        self.default = default_method()
        self.default_method = checked_method(self.default.method)[0]  # its shown name
        self.default_threshold = box_settings(self.default.method).threshold
        # Transformer layers (a `to_grid`) get the patch-token explainers: the gradient and
        # perturbation methods; the ReLU rules need ReLUs and a convolutional layer.
        caption_type = CaptionExplainer if captioner_grid is None else PatchTokenCaptionExplainer
        vqa_type = VQAExplainer if vqa_grid is None else PatchTokenVQAExplainer
        self.caption_explainer = caption_type(
            captioner, self.captioner_layer, to_grid=captioner_grid
        )
        self.vqa_explainer = vqa_type(vqa_model, self.vqa_layer, to_grid=vqa_grid)
        self.explainers = {"captions": self.caption_explainer, "vqa": self.vqa_explainer}
        # a transformer with an attention stack (BLIP captioning, ViLT): the attention methods
        self.stack_explainers = {
            "captions": captioner_attention
            and CaptionStackExplainer(captioner, captioner_attention, captioner_grid),
            "vqa": vqa_attention and VQAStackExplainer(vqa_model, vqa_attention, vqa_grid),
        }
        self._chosen_explainers = {
            "captions": self._chosen_explainer(caption_type, captioner, captioner_grid),
            "vqa": self._chosen_explainer(vqa_type, vqa_model, vqa_grid),
        }
        self.preprocess_image = preprocess_image or _default_preprocess(captioner)
        self.vqa_preprocess = vqa_preprocess or self.preprocess_image
        if work_dir is None:  # our own temporary folder: removed with the demo
            work_dir = tempfile.mkdtemp(prefix="mmcam-demo-")
            weakref.finalize(self, shutil.rmtree, work_dir, ignore_errors=True)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._caption_lock, self._vqa_lock = threading.Lock(), threading.Lock()

    def _chosen_explainer(
        self, explainer: type, model: nn.Module, grid: Grid | None
    ) -> CaptionExplainer | VQAExplainer | None:
        """The explainer at the default method's chosen layer for `model`, if one was chosen."""
        layer = self.default.layer_for(model, self.default.method)
        return explainer(model, layer, to_grid=grid) if layer else None

    def explainer(self, task: str, method: str) -> Explainer:
        """The explainer of `task` ("captions" or "vqa") that maps by `method` (an id)."""
        stack = self.stack_explainers[task]
        if stack and stack.runs(method):
            return stack
        chosen = self._chosen_explainers[task]
        if chosen is not None and method == self.default.method:
            return chosen
        return self.explainers[task]

    def layers_note(self, task: str) -> str:
        """Which layer each method of `task` reads, for the page."""
        own = self.explainers[task].layer
        own = own if isinstance(own, str) else type(own).__name__  # a module given by the caller
        chosen = self._chosen_explainers[task]
        if chosen is None:
            return f"CAM methods read {own}."
        return (
            f"{self.default_method} (the default, chosen on val) reads {chosen.layer}; "
            f"the other CAM methods read {own}."
        )

    def methods(self, task: str) -> list[str]:
        """The ids of the methods offered for `task` ("captions" or "vqa"): those its explainer
        runs (and, for a transformer with an attention stack, the attention methods), read from
        the method registry when asked."""
        stack = self.stack_explainers[task]
        offered = self.explainers[task].offered()
        return offered + [m for m in (stack.offered() if stack else []) if m not in offered]

    def choices(self, task: str) -> list[tuple[str, str]]:
        """(shown name, id) of each method offered for `task`: the page's labels and values."""
        return [(registry.get(method).name, method) for method in self.methods(task)]

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
        from mmcam.runs.models import load_run_captioner, load_run_vqa

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
            captioner_attention=captioner.attention,
            vqa_attention=vqa.attention,
            **kwargs,
        )

    # ------------------------------------------------------------------ captioning

    def caption(
        self,
        image: ImageSource,
        method: str | None = None,
        word: str | int | None = None,
        threshold: float | None = None,
        refine: bool = True,
    ) -> CaptionResult:
        """Caption `image`, map every word and the whole caption by `method` (None: the
        default), and draw the map of `word` (a choice label, a word index, or None /
        WHOLE_CAPTION) with its box (`threshold` None: the method's); with `refine`, also the box
        refined from the image with the map as seeds (map + image)."""
        picture = read_image(image)
        shown, key = checked_method(method, self.methods("captions"), self.default.method)
        threshold = checked_threshold(threshold, box_settings(key).threshold)
        inputs = self.preprocess_image(picture)[None]  # [1, 3, S, S]
        with self._caption_lock:
            maps = self._caption_maps(inputs, key)
        text, words, word_maps, caption_map, raw_words, raw_caption, scores = maps
        choices = [WHOLE_CAPTION] + [f"{i + 1}: {w}" for i, w in enumerate(words)]
        selected = chosen_word(choices, word)
        chosen = (
            caption_map if selected == WHOLE_CAPTION else word_maps[choices.index(selected) - 1]
        )
        size = (picture.height, picture.width)
        boxes = map_boxes(chosen, threshold, size, selected, picture, refined_settings(key, refine))
        heat_map = draw_overlay(picture, chosen, boxes, DISPLAY_SIDE)
        folder = request_folder(self.work_dir)
        gallery = []  # thumbnails as JPEG: 10x faster to write than PNG, and only for looking
        thumbnail = picture.resize(display_size(*picture.size, GALLERY), Image.BILINEAR)
        for index, (word_map, label) in enumerate(zip(word_maps, choices[1:], strict=True)):
            drawn = draw_overlay(picture, word_map, [], GALLERY, thumbnail)
            path = folder / f"word-{index + 1:02d}-{slug(words[index])}.jpg"
            gallery.append((save_image(path, drawn), label))
        files = [
            save_image(folder / f"caption-{slug(selected)}-{key}.png", heat_map),
            save_npz(
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
        the words' log-probabilities `[T]`: every word from the explainer's one call."""
        explainer = self.explainer("captions", method)
        caption = self.caption_explainer.generate(inputs)[0]  # the model's own caption
        if not caption:
            raise InputError("The model gave an empty caption for this image; try another image.")
        explained = explainer.explain(
            inputs, [caption], method=method, perturbation=PERTURBATION.get(method)
        )
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

    # ------------------------------------------------------------------ VQA

    def answer(
        self,
        image: ImageSource,
        question: str | None,
        method: str | None = None,
        answer: str | None = None,
        threshold: float | None = None,
        top_k: int = 5,
        refine: bool = True,
    ) -> AnswerResult:
        """Answer `question` about `image`: the top-k answers with probabilities, the map and box
        of `answer` (the best one when None or not among them) by `method` (with `refine`, also
        the box refined from the image: map + image), and its counterfactual Grad-CAM map (what
        argues against it, at the same layer). `method` None: the default; `threshold` None: the
        method's."""
        picture = read_image(image)
        question, unknown = check_question(self.vqa_model, question)
        shown, key = checked_method(method, self.methods("vqa"), self.default.method)
        threshold = checked_threshold(threshold, box_settings(key).threshold)
        inputs = self.vqa_preprocess(picture)[None]
        gradient = registry.get(key).kind == "gradient"
        relevance = None
        with self._vqa_lock:
            explained = (self.explainer("vqa", key) if gradient else self.vqa_explainer).explain(
                inputs, [question], top_k=top_k, method=key if gradient else "gradcam",
                counterfactual=True,
            )  # fmt: skip
            answers = explained.answers[0]
            selected = answer if answer in answers else answers[0]
            mapping = explained.maps
            if not gradient:  # every top answer's map from one pass, one sweep or a row each
                other = self.explainer("vqa", key).explain(
                    inputs, [question], top_k=top_k, method=key, perturbation=PERTURBATION.get(key)
                )
                mapping = other.maps
                if other.question_relevance is not None:  # which question words it used
                    relevance = question_words(other, mapping.labels[0].index(selected))
            mapped, maps, raw = mapping.labels[0], mapping.maps[0], mapping.raw[0]
        probabilities = explained.probabilities[0].tolist()
        against = explained.counterfactual.maps[0, answers.index(selected)]
        heat = maps[mapped.index(selected)]
        size = (picture.height, picture.width)
        boxes = map_boxes(heat, threshold, size, selected, picture, refined_settings(key, refine))
        heat_map = draw_overlay(picture, heat, boxes, DISPLAY_SIDE)
        counterfactual = draw_overlay(picture, against, [], DISPLAY_SIDE)
        notes = []
        if answer not in (None, "", selected):
            notes.append(
                f"'{answer}' is not among the top {len(answers)} answers; showing the best."
            )
        if unknown:
            words = ", ".join(f"'{w}'" for w in unknown)
            notes.append(f"Words the model does not know (read as unknown): {words}.")
        folder = request_folder(self.work_dir)
        files = [
            save_image(folder / f"answer-{slug(selected)}-{key}.png", heat_map),
            save_image(folder / f"counterfactual-{slug(selected)}.png", counterfactual),
            save_npz(
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
            explained.counterfactual.maps[0], size, relevance,
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


def refined_settings(method: str, refine: bool) -> RefineSettings | None:
    """The refinement's seeds chosen on val for `method` (models/box_settings.json), or None
    when the box is not to be refined."""
    return box_settings(method).refine_settings() if refine else None
