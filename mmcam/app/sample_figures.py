"""`make run`: explain the bundled models on the bundled sample scenes and draw what they saw.

For each sample: the caption with one map per word (the default method at its chosen layer,
then Grad-CAM, Grad-CAM++, HiResCAM and counterfactual rows at the model's own layer, and the
whole caption's map), and each question's top answers with their Grad-CAM maps, the best
answer's HiResCAM and counterfactual maps. The first sample also gets one row per pixel-space
method (guided backprop, deconvnet, guided Grad-CAM, occlusion, strongest feature map) for its
caption and its first question. `boxes.png` shows, for the first shape word of each caption,
the default map's peak, its own box and the refined box against the object's true box.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from mmcam.app.boxes_figure import BoxedWord, boxes_figure
from mmcam.app.inputs import checked_method
from mmcam.boxes.from_maps import boxes_from_map, resize_map
from mmcam.boxes.refine import refined_box
from mmcam.boxes.settings import box_settings, default_method, map_boxes
from mmcam.core.bundled import BUNDLED
from mmcam.core.targets import CaptionLogProb, ClassLogit
from mmcam.data.files import write_json
from mmcam.data.images import image_to_uint8, preprocess
from mmcam.evaluation.box_metrics import pointing_game
from mmcam.evaluation.word_categories import CategoryMention, WordCategories
from mmcam.explainers.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explainers.rows import caption_tokens
from mmcam.explainers.vqa import VQAExplainer
from mmcam.methods import registry
from mmcam.methods.pixel_space import pixel_explanations
from mmcam.visualize import PanelRow, map_grid, panel_row
from mmcam.zoo.captioner import EXPLAINED_LAYER as CAPTIONER_LAYER
from mmcam.zoo.captioner import load_captioner
from mmcam.zoo.vqa_model import EXPLAINED_LAYER as VQA_LAYER
from mmcam.zoo.vqa_model import load_vqa_model

SAMPLES = BUNDLED / "samples"
CAPTION_METHODS = {
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcam++",
    "HiResCAM": "hirescam",
    "counterfactual": "counterfactual",
}
# whose maps show evidence for the word: where the word's map peaks is a verdict on pointing
POINTING_METHODS = tuple(n for n, m in CAPTION_METHODS.items() if registry.get(m).evidence)
BOX_LEGEND = "boxes: white = the map's own, green = map + image (refined from the image)"


def read_samples(samples: str | Path = SAMPLES) -> tuple[list[dict], list, list]:
    """The samples' listing (`samples.json`), their pictures (PIL) and the pictures as the
    figures show them (uint8 `[H, W, 3]` arrays)."""
    samples = Path(samples)
    listing = json.loads((samples / "samples.json").read_text())["samples"]
    pictures = [Image.open(samples / sample["file_name"]) for sample in listing]
    shown = [image_to_uint8(picture).permute(1, 2, 0).numpy() for picture in pictures]
    return listing, pictures, shown


def write_sample_figures(out: str | Path, samples: str | Path = SAMPLES) -> dict:
    """Write the figures into `out` and return (and save as `summary.json`) what was found."""
    out = Path(out)
    listing, pictures, shown = read_samples(samples)
    images = torch.stack([preprocess(picture) for picture in pictures])  # [N, 3, 128, 128]

    captioner, vqa = load_captioner(), load_vqa_model()
    explainer = CaptionExplainer(captioner, CAPTIONER_LAYER)
    captions = explainer.generate(images)
    default = default_method()
    layer = default.layer_for(captioner, default.method) or CAPTIONER_LAYER
    default_name = f"{checked_method(default.method)[0]} at {layer} (default)"
    by_method = {
        default_name: CaptionExplainer(captioner, layer).explain(
            images, captions, method=default.method
        ),
        **{
            name: explainer.explain(images, captions, method=method)
            for name, method in CAPTION_METHODS.items()
        },
    }
    methods = {default_name: default.method, **CAPTION_METHODS}
    summary, boxed = [], []
    for index, sample in enumerate(listing):
        gradcam = by_method["Grad-CAM"]
        words = gradcam.word_labels(index)
        rows = [
            _caption_row(name, methods[name], result, index, words, shown[index])
            for name, result in by_method.items()
        ]
        boxed += _boxed_words(by_method[default_name], default.method, index, sample, shown)[:1]
        if index == 0:
            pixel = _caption_pixel_maps(captioner, images[:1], captions[:1])
            rows.append(panel_row(pixel, "pixel methods, whole caption"))
        caption_path = map_grid(
            shown[index], rows, out / f"caption_{index + 1}.png",
            suptitle=f"{gradcam.texts[index]}\n{BOX_LEGEND}",
        )  # fmt: skip
        answers = _answer_questions(vqa, images[index], shown[index], sample, index, out)
        summary.append(
            {
                "image": sample["file_name"],
                "caption": gradcam.texts[index],
                "word_pointing": word_pointing(words, by_method, index, sample),
                "answers": answers,
                "figures": [str(caption_path), str(out / f"vqa_{index + 1}.png")],
            }
        )
    boxes_figure(boxed, default_name, out / "boxes.png")
    write_json(out / "summary.json", summary)
    return {"samples": summary, "boxes": [_box_summary(found) for found in boxed]}


def _caption_row(name: str, method: str, result, index: int, words: list[str], picture) -> PanelRow:
    """One method's per-word maps and the whole caption's map; on words naming a shape the
    map's own box and the box refined from the `picture` (map + image)."""
    maps = [*result.words.maps[index, : len(words)], result.caption.maps[index]]
    shape_words = {m.head for m in WordCategories.shapes().find(words)}
    settings = box_settings(method)
    boxes, refined = [], []
    for i in range(len(words)):
        own = boxes_from_map(maps[i], settings.threshold) if i in shape_words else []
        box = refined_box(picture, maps[i], settings.refine_settings()) if own else None
        boxes.append([b.to_list() for b in own])
        refined.append([box.to_list()] if box is not None else [])
    return PanelRow(name, maps, [*words, "whole caption"], [*boxes, []], [*refined, []])


def named_objects(words: Sequence[str], sample: dict) -> list[tuple[CategoryMention, dict]]:
    """Each "<colour> <shape>" the words name, with the sample's object of that colour and kind."""
    return [
        (mention, obj)
        for mention in WordCategories.shapes().find(words)
        for obj in sample["objects"]
        if (obj["kind"], obj["color"]) == (mention.category, mention.color)
    ]


def _boxed_words(result, method: str, index: int, sample: dict, shown) -> list[BoxedWord]:
    """Each shape word of caption `index` whose object the sample has, with its map's boxes."""
    found = []
    for mention, obj in named_objects(result.word_labels(index), sample):
        heat = resize_map(result.words.maps[index, mention.head], shown[index].shape[:2])
        peak = pointing_game(heat, [obj["bbox"]], 0).points[0]
        boxes = map_boxes(heat, shown[index], box_settings(method))
        word = f"{mention.color} {mention.category}"
        found.append(BoxedWord(word, shown[index], heat, obj["bbox"], peak, boxes))
    return found


def _box_summary(found: BoxedWord) -> dict:
    """A boxed word's boxes and their IoU with the object's true box."""
    summary = {"word": found.word, "truth": list(found.truth)}
    for kind, box in (("threshold", found.boxes.threshold), ("refined", found.boxes.refined)):
        summary[f"{kind}_box"] = box.to_list() if box else None
        summary[f"{kind}_iou"] = found.iou(box)
    return summary


def _caption_pixel_maps(captioner, images: Tensor, captions: list[list[int]]) -> dict:
    """Every pixel-space method on the caption's log-probability."""
    tokens, counts = caption_tokens(
        captions, captioner.bos_index, captioner.eos_index, captioner.pad_index, images.device
    )

    def forward(x: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        return captioner.decode_logits(captioner.encode(x), tokens, lengths)

    return pixel_explanations(
        forward,
        images,
        CaptionLogProb(tokens, counts),
        captioner,
        CAPTIONER_LAYER,
        forward_args=(tokens, counts),
    )


def _answer_questions(vqa, image: Tensor, shown, sample: dict, index: int, out: Path) -> list:
    """Top answers and maps for every question of a sample, drawn as one figure."""
    questions = [entry["question"] for entry in sample["questions"]]
    images = image.expand(len(questions), -1, -1, -1)
    explainer = VQAExplainer(vqa, VQA_LAYER)
    result = explainer.explain(images, questions, counterfactual=True)
    hirescam = explainer.explain(images, questions, top_k=1, method="hirescam")
    rows, answers = [], []
    for row, entry in enumerate(sample["questions"]):
        labels = [
            f"{answer} {probability:.2f}"
            for answer, probability in zip(
                result.answers[row], result.probabilities[row].tolist(), strict=True
            )
        ]
        best = result.answers[row][0]
        maps = [
            *result.maps.maps[row],
            hirescam.maps.maps[row, 0],
            result.counterfactual.maps[row, 0],
        ]
        titles = [*labels, f"{best} HiResCAM", f"against {best}"]
        rows.append(PanelRow(entry["question"], maps, titles))
        answers.append(
            {
                "question": entry["question"],
                "expected": entry["answer"],
                "answer": result.answers[row][0],
                "probability": round(float(result.probabilities[row, 0]), 4),
            }
        )
    if index == 0:
        question = vqa.tokenize(questions[:1])
        best = vqa.answers.index(result.answers[0][0])
        pixel = pixel_explanations(
            vqa, images[:1], ClassLogit(best), vqa, VQA_LAYER, forward_args=(question,)
        )
        rows.append(panel_row(pixel, f"pixel methods, {result.answers[0][0]}"))
    map_grid(shown, rows, out / f"vqa_{index + 1}.png")
    return answers


def word_pointing(
    words: Sequence[str],
    by_method: dict[str, CaptionExplanation],
    index: int,
    sample: dict,
    names: Sequence[str] = POINTING_METHODS,
) -> list[dict]:
    """For each "<colour> <shape>" the caption names: does its word map peak inside that
    object's ground-truth box, by each method `names` (those whose map shows evidence for the
    word)?"""
    found = []
    for mention, obj in named_objects(words, sample):
        inside = {}
        for name in names:
            heat = by_method[name].words.maps[index, mention.head]
            inside[name] = pointing_game(heat, [obj["bbox"]], 0).per_map[0]
        found.append({"word": f"{mention.color} {mention.category}", "peak_inside": inside})
    return found
