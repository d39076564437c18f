"""Explain a whole dataset: every image of a COCO captions file, or every VQA v2 question.

`explain_captions` captions each image, maps every word, and scores the maps of the words
that name a category (`mmcam.word_categories`) against the COCO instances, when given;
`explain_vqa` answers each question, maps the top answers, and scores the top answer's map
against the instances the question names. Both also measure faithfulness by deletion for the
map and two baselines, a random map and a centre Gaussian: the generated caption's
teacher-forced log-probability (against the whole caption's map), or the top answer's logit,
as the most salient pixels are removed.

The work goes through `mmcam.runner`: the items (images) are cut into fixed chunks; a
DataLoader's workers read and preprocess a chunk's images while the model explains the
previous one; each finished chunk's records and raw maps are written atomically to
`<out>/parts/`. So memory holds one chunk at a time whatever the dataset's size; a run killed
at any moment and restarted with the same command redoes only the chunks in flight; under
torchrun, rank r explains chunks r, r + W, ... and rank 0 merges the parts in chunk order, so
one process and W processes write the same files. An image that cannot be read, and a question
with no word the model knows, become records that say why; the run goes on.

Files written to `<out>` (all atomically) once every chunk is done:

    captions_results.json  [{"image_id", "caption"}]                  (captions)
    vqa_results.json       [{"question_id", "answer"}]                (VQA)
    boxes_results.json     COCO detection results [{"image_id", "category_id", "bbox", "score"}]
    maps.npz               raw maps at layer resolution: key image id -> [words, h, w]
                           (captions), key question id -> [top_k, h, w] (VQA); for the
                           pixel-space methods (guided backprop, deconvnet) the [0, 1] maps
                           at input resolution, as float16; `read_map` resizes one to its
                           image's pixels
    items.jsonl            one record per image (captions) or question (VQA), every detail
    metrics.json, report.txt   see `mmcam.dataset_report`
    figures/               overlays with boxes, with `save_figures`
    run.json               the options; a restart with different ones is refused
    timing.json            this process's images, seconds and images/s (the only file that
                           differs between two runs of the same command)
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from mmcam.captioning import CaptionExplainer, caption_tokens
from mmcam.dataset_report import caption_metrics, report_text, summary, vqa_metrics
from mmcam.datasets import (
    CocoInstance,
    VQAItem,
    load_image,
    read_coco_captions,
    read_coco_instances,
    read_vqa,
)
from mmcam.explanation import Explanation
from mmcam.localize import boxes_from_map, resize_map, smooth_maps
from mmcam.metrics import (
    DEFAULT_THRESHOLDS,
    center_gaussian_map,
    deletion_auc,
    localization_accuracy,
    max_box_acc,
    pointing_game,
    random_map,
    vqa_accuracy,
)
from mmcam.model_state import explaining
from mmcam.pixel_methods import EXPLAINER_METHODS, RULE_METHODS
from mmcam.runner import (
    ChunkedRun,
    LoadedChunk,
    Shard,
    join_process_group,
    load_chunks,
    wait_for_all_ranks,
    write_atomically,
    write_json,
)
from mmcam.tap import Grid, find_layer
from mmcam.targets import CaptionLogProb
from mmcam.visualize import PanelRow, map_grid
from mmcam.vocab import tokenize
from mmcam.vqa import VQAExplainer, _move_to, _repeat_rows
from mmcam.word_categories import WordCategories

__all__ = [
    "CaptionData",
    "ExplainedModel",
    "LoadedImage",
    "RunOptions",
    "RunResult",
    "VQAData",
    "explain_captions",
    "explain_vqa",
    "load_run_captioner",
    "load_run_vqa",
    "read_caption_data",
    "read_map",
    "read_vqa_data",
]

# ----------------------------------------------------------------------------- models


@dataclass
class ExplainedModel:
    """A model ready for a dataset run: the model (a `CaptionModel` or `VQAModel`), its
    explained layer and grid reshape, its preprocessing (PIL image -> input `[3, H, W]`,
    run in DataLoader workers), how a caption's token ids read as text, and whether the
    pixel-space methods apply (its network has ReLUs for their backward rule)."""

    model: nn.Module
    layer: str
    preprocess: Callable[[Image.Image], Tensor]
    name: str
    to_grid: Grid | None = None
    caption_text: Callable[[list[int]], str] | None = None
    pixel_space: bool = True

    def __post_init__(self) -> None:
        find_layer(self.model, self.layer)  # an unknown name fails now, listing the valid ones

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


class _HFImages:
    """A Hugging Face processor's image preprocessing, on the CPU (picklable for workers)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> Tensor:
        return self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][
            0
        ]


def load_run_captioner(
    checkpoint: str | Path | None = None,
    *,
    hf: str | None = None,
    device: str = "cpu",
    layer: str | None = None,
) -> ExplainedModel:
    """The bundled captioner (or the one in `checkpoint`), or with `hf` a BLIP captioner from
    a Hugging Face hub name or local folder; explained at `layer` (default: the model's own)."""
    if hf is not None:
        from mmcam.hf import load_hf_captioner

        adapter = load_hf_captioner(hf, device=device)
        return ExplainedModel(
            adapter,
            layer or adapter.layer,
            _HFImages(adapter.processor),
            f"hf:{hf}",
            adapter.to_grid,
            lambda ids: adapter.tokenizer.decode(ids, skip_special_tokens=True),
            pixel_space=False,
        )
    from mmcam.captioner import DEFAULT_CAPTIONER, load_captioner, preprocess

    path = checkpoint or DEFAULT_CAPTIONER
    model = load_captioner(path, device)
    return ExplainedModel(model, layer or model.explained_layer, preprocess, str(path))


def load_run_vqa(
    checkpoint: str | Path | None = None,
    *,
    hf: str | None = None,
    answers: Sequence[str] | None = None,
    device: str = "cpu",
    layer: str | None = None,
) -> ExplainedModel:
    """The bundled VQA model (or the one in `checkpoint`), or with `hf` a ViLT / BLIP VQA
    model from a Hugging Face hub name or local folder (BLIP scores the candidate `answers`);
    explained at `layer` (default: the model's own)."""
    if hf is not None:
        from mmcam.hf import load_hf_vqa

        adapter = load_hf_vqa(hf, answers=answers, device=device)
        return ExplainedModel(
            adapter,
            layer or adapter.layer,
            _HFImages(adapter.processor),
            f"hf:{hf}",
            adapter.to_grid,
            pixel_space=False,
        )
    from mmcam.vqa_model import DEFAULT_VQA, load_vqa_model, preprocess

    path = checkpoint or DEFAULT_VQA
    model = load_vqa_model(path, device)
    return ExplainedModel(model, layer or model.explained_layer, preprocess, str(path))


def run_device(requested: str = "auto") -> str:
    """`requested`, or with "auto" this process's GPU (torchrun's LOCAL_RANK) or the CPU; a
    GPU becomes the current CUDA device."""
    device = requested
    if requested == "auto":
        rank = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda" and chosen.index is not None:  # NCCL's barrier uses the current
        torch.cuda.set_device(chosen)  # device: make it this rank's
    return device


# ----------------------------------------------------------------------------- data


@dataclass
class CaptionData:
    """What a captions run reads: image files, reference captions, and (optionally) the
    instances each category word is scored against."""

    files: dict[int, Path]  # image id -> file, in the captions file's order
    references: dict[int, list[str]]
    categories: WordCategories
    instances: dict[int, list[CocoInstance]] | None = None


@dataclass
class VQAData:
    """What a VQA run reads: each image's questions (with human answers when annotated), image
    files, and (optionally) instances."""

    questions: dict[int, list[VQAItem]]  # image id -> its questions, in file order
    files: dict[int, Path]
    categories: WordCategories
    instances: dict[int, list[CocoInstance]] | None = None

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
    files = {i: Path(images) / data.images[i].file_name for i in ids}
    return CaptionData(files, {i: data.captions[i] for i in ids}, words, boxes)


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
        files[image_id] = folder / info.file_name if info else _official_file(folder, image_id)
    return VQAData({i: by_image[i] for i in ids}, files, words, boxes)


def _official_file(folder: Path, image_id: int) -> Path:
    stem = f"COCO_{folder.name}_{image_id:012d}"
    jpg, png = folder / f"{stem}.jpg", folder / f"{stem}.png"
    return png if not jpg.exists() and png.exists() else jpg


# ----------------------------------------------------------------------------- options


@dataclass
class RunOptions:
    """How a dataset run works. The fields above `workers` change the outputs and are kept in
    `run.json`: a restart must use the same ones."""

    method: str = "gradcam"
    smooth: float = 0.0  # Gaussian sigma (input pixels) blurring maps before they are scored
    box_threshold: float = 0.15
    pointing_tolerance: float = 15.0
    deletion_steps: int = 20  # 0: no deletion AUC
    max_length: int = 20
    beam_size: int = 1
    top_k: int = 3
    batch_size: int = 16
    chunk_size: int = 64
    save_figures: int = 0  # figures of the first N items
    workers: int = 2
    progress: bool = True

    def stamp(self) -> dict:
        kept = asdict(self)
        for name in ("workers", "progress"):
            kept.pop(name)
        return kept


# ----------------------------------------------------------------------------- loading


@dataclass
class LoadedImage:
    """One image as a DataLoader worker loaded it."""

    pixels: Tensor  # [3, H, W] model input
    size: tuple[int, int]  # original (height, width)
    mode: str  # the file's PIL mode; "L", "RGBA", "I;16", ... were converted to RGB


class ImageLoader:
    """image id -> `LoadedImage`; raises (and the runner records why) on a missing,
    truncated or non-image file."""

    def __init__(self, files: dict[int, Path], preprocess: Callable[[Image.Image], Tensor]):
        self.files, self.preprocess = files, preprocess

    def __call__(self, image_id: int) -> LoadedImage:
        path = self.files[image_id]
        image = load_image(path)  # 8-bit RGB, or an error naming the file
        with Image.open(path) as header:
            mode = header.mode
        return LoadedImage(self.preprocess(image), (image.height, image.width), mode)


def _batches(
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


# ----------------------------------------------------------------------------- scoring


def _ground_truth(
    instances: dict[int, list[CocoInstance]] | None,
    image_id: int,
    category_id: int,
    color: str | None,
) -> list[list[float]] | None:
    """Boxes of the image's instances of `category_id` (and of `color`, when both the text and
    the instances name colours); None when there are no instances to compare with."""
    if instances is None:
        return None
    return [
        list(instance.bbox)
        for instance in instances.get(image_id, [])
        if instance.category_id == category_id
        and (color is None or instance.extra.get("color") in (None, color))
    ]


def _score_map(
    heat: Tensor, size: tuple[int, int], truth: list[list[float]] | None, options: RunOptions
) -> dict:
    """One map (input resolution) judged in the original image's pixels: its box at the box
    threshold and, when the ground truth has boxes, pointing, the box's IoU and the box hits of
    the whole threshold sweep (`DEFAULT_THRESHOLDS`, IoU >= 0.5)."""
    heat = resize_map(heat.detach().float().cpu(), size)
    boxes = boxes_from_map(heat, options.box_threshold)
    scored: dict[str, Any] = {
        "box": boxes[0].to_list() if boxes else None,
        "box_score": boxes[0].score if boxes else None,
        "gt_boxes": truth,
    }
    if truth:
        point = pointing_game(heat, truth, options.pointing_tolerance)
        scored["peak"] = point.points[0]
        scored["pointing"] = point.per_map[0]
        scored["iou"] = localization_accuracy([boxes], [truth]).ious[0]
        sweep = max_box_acc(heat[None], [truth], DEFAULT_THRESHOLDS)
        scored["box_hits"] = [int(hit) for hit in sweep.accuracies]
    return scored


def _stored_maps(explained: Explanation, row: int, count: int | None = None) -> np.ndarray:
    """What `maps.npz` keeps of item `row`'s first `count` maps: the raw maps at layer
    resolution (float32), or for a pixel-space method its [0, 1] maps at input resolution
    (float16: the signed [3, H, W] attributions would take six times the space)."""
    if explained.method in RULE_METHODS:
        return explained.maps[row, :count].half().cpu().numpy()
    return explained.raw[row, :count].float().cpu().numpy()


def _deletion(
    image: Tensor, heat: Tensor, score: Callable[[Tensor], Tensor], steps: int, seed: int
) -> dict[str, float]:
    """Deletion AUC of the map and of the random (seeded by the item) and centre baselines;
    pixels go to the model's zero input (the data mean for normalised inputs)."""
    size = tuple(heat.shape)
    maps = {
        "gradcam": heat,
        "random": random_map(size, seed=seed, device=heat.device),
        "center": center_gaussian_map(size, device=heat.device),
    }
    return {
        name: deletion_auc(image, saliency, score, steps=steps, batch_size=steps + 1).auc
        for name, saliency in maps.items()
    }


def caption_score(model: nn.Module, caption: list[int]) -> Callable[[Tensor], Tensor]:
    """images `[N, 3, H, W]` -> log p(caption | image) `[N]`, teacher-forced (words and EOS)."""

    def score(images: Tensor) -> Tensor:
        tokens, counts = caption_tokens(
            [caption] * images.shape[0],
            model.bos_index,
            model.eos_index,
            model.pad_index,
            images.device,
        )
        lengths = counts + 1
        with explaining(model, images.device):
            logits = model.decode_logits(model.encode(images), tokens, lengths)
        return CaptionLogProb(tokens, lengths)(logits)

    return score


def answer_score(model: nn.Module, question: str, answer: int) -> Callable[[Tensor], Tensor]:
    """images `[N, 3, H, W]` -> the logit of answer index `answer` to `question` `[N]`."""
    tokens = model.tokenize([question])

    def score(images: Tensor) -> Tensor:
        rows = _move_to(_repeat_rows(tokens, images.shape[0]), images.device)
        with explaining(model, images.device):
            return model(images, rows)[:, answer]

    return score


def _save_figure(path: Path, image_file: Path, rows: list[PanelRow], title: str) -> None:
    """The figure via a temporary file and a rename, like every other output."""
    temporary = path.with_name(f".{path.stem}.tmp.png")
    map_grid(load_image(image_file), rows, temporary, suptitle=title)
    temporary.replace(path)


# ----------------------------------------------------------------------------- captions


def _caption_chunk(
    model: ExplainedModel,
    data: CaptionData,
    chunk: LoadedChunk,
    positions: dict[int, int],
    options: RunOptions,
    out: Path,
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Records and raw maps of one chunk of images."""
    explainer = CaptionExplainer(model.model, model.layer, to_grid=model.to_grid)
    device = model.device
    records: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    for batch in _batches(chunk.items, options.batch_size):
        images = torch.stack([loaded.pixels for _, loaded in batch]).to(device)
        captions = explainer.generate(images, options.max_length, options.beam_size)
        spoken = [row for row, caption in enumerate(captions) if caption]
        result = None
        if spoken:
            result = explainer.explain(
                images[spoken], [captions[row] for row in spoken], method=options.method
            )
        for row, (image_id, loaded) in enumerate(batch):
            caption = captions[row]
            text = model.caption_text(caption) if model.caption_text else None
            record: dict[str, Any] = {"image_id": image_id, "size": list(loaded.size)}
            if loaded.mode != "RGB":
                record["converted_from"] = loaded.mode
            if result is None or row not in spoken:
                records.append({**record, "caption": text or "", "words": [], "mentions": []})
                continue
            index = spoken.index(row)
            words = result.word_labels(index)
            count = len(words)
            word_maps = smooth_maps(result.words.maps[index, :count], options.smooth)  # [T, H, W]
            arrays[str(image_id)] = _stored_maps(result.words, index, count)
            record["caption"] = text if text is not None else result.texts[index]
            record["words"] = words
            record["word_scores"] = result.words.scores[index, :count].tolist()
            mentions = []
            for mention in data.categories.find(words):
                truth = _ground_truth(data.instances, image_id, mention.category_id, mention.color)
                mentions.append(
                    {
                        "word": mention.head,
                        "phrase": " ".join(words[mention.start : mention.end]),
                        "category_id": mention.category_id,
                        "category": mention.category,
                        "color": mention.color,
                        **_score_map(word_maps[mention.head], loaded.size, truth, options),
                    }
                )
            record["mentions"] = mentions
            if options.deletion_steps:
                record["deletion_auc"] = _deletion(
                    images[row],
                    smooth_maps(result.caption.maps[index], options.smooth),
                    caption_score(model.model, caption),
                    options.deletion_steps,
                    image_id,
                )
            if positions[image_id] < options.save_figures:
                boxes = [[] for _ in words]
                for mention in mentions:
                    boxes[mention["word"]] = [mention["box"]] if mention["box"] else []
                sized = resize_map(word_maps.float().cpu(), loaded.size)
                _save_figure(
                    out / "figures" / f"{image_id}.png",
                    data.files[image_id],
                    [PanelRow(f"image {image_id}", list(sized), words, boxes)],
                    record["caption"],
                )
            records.append(record)
    records += [{"image_id": f["id"], "error": f["error"]} for f in chunk.failures]
    records.sort(key=lambda record: positions[record["image_id"]])
    return records, arrays


def explain_captions(
    model: ExplainedModel,
    data: CaptionData,
    out: str | Path,
    options: RunOptions | None = None,
    shard: Shard | None = None,
) -> RunResult | None:
    """Caption, explain and score every image of `data` into `out`; resumable and shardable
    (module docstring). Returns the metrics on the main process, None on the others."""
    return _run("captions", _caption_chunk, model, data, list(data.files), out, options, shard)


# ----------------------------------------------------------------------------- VQA


def _unusable(model: nn.Module, question: str) -> str | None:
    """Why a question cannot be asked (empty, or no word the model knows), or None."""
    words = re.findall(r"\w+", question.lower())
    if not words:
        return "the question has no words"
    unknown = {word.lower() for word in model.unknown_words(question)}
    if all(word in unknown for word in words):
        return f"no known words (unknown: {sorted(unknown)})"
    return None


def _vqa_chunk(
    model: ExplainedModel,
    data: VQAData,
    chunk: LoadedChunk,
    positions: dict[int, int],
    options: RunOptions,
    out: Path,
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Records (one per question) and raw maps of one chunk of images."""
    explainer = VQAExplainer(model.model, model.layer, to_grid=model.to_grid)
    answer_index = {answer: i for i, answer in enumerate(model.model.answers)}
    device = model.device
    records: dict[int, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    asked: list[tuple[VQAItem, LoadedImage]] = []
    for image_id, loaded in chunk.items:
        for item in data.questions[image_id]:
            record = _question_record(item)
            if loaded.mode != "RGB":
                record["converted_from"] = loaded.mode
            reason = _unusable(model.model, item.question)
            if reason:
                record["skipped"] = reason
            else:
                asked.append((item, loaded))
            records[item.question_id] = record
    figure_rows: dict[int, list[PanelRow]] = {}
    for batch in _batches(asked, options.batch_size):
        images = torch.stack([loaded.pixels for _, loaded in batch]).to(device)
        questions = [item.question for item, _ in batch]
        result = explainer.explain(images, questions, top_k=options.top_k, method=options.method)
        for row, (item, loaded) in enumerate(batch):
            record = records[item.question_id]
            answer = result.answers[row][0]
            arrays[str(item.question_id)] = _stored_maps(result.maps, row)
            record["answer"] = answer
            record["top_answers"] = result.answers[row]
            record["probabilities"] = result.probabilities[row].tolist()
            if item.answers:
                record["accuracy"] = vqa_accuracy(answer, item.answers)
            mentions = data.categories.find(tokenize(item.question))
            truth = None
            if data.instances is not None:
                truth = []
                for mention in mentions:
                    truth += _ground_truth(
                        data.instances, item.image_id, mention.category_id, mention.color
                    )
            record["categories"] = [mention.category for mention in mentions]
            record["category_ids"] = [mention.category_id for mention in mentions]
            maps = smooth_maps(result.maps.maps[row], options.smooth)  # [k, H, W]
            record.update(_score_map(maps[0], loaded.size, truth, options))
            if options.deletion_steps:
                record["deletion_auc"] = _deletion(
                    images[row],
                    maps[0],
                    answer_score(model.model, item.question, answer_index[answer]),
                    options.deletion_steps,
                    item.question_id,
                )
            if positions[item.image_id] < options.save_figures:
                sized = resize_map(maps.float().cpu(), loaded.size)
                chances = result.probabilities[row].tolist()
                answers = result.answers[row]
                titles = [f"{a} ({p:.2f})" for a, p in zip(answers, chances, strict=True)]
                boxes = [[record["box"]] if record["box"] else []] + [[]] * (len(titles) - 1)
                figure_rows.setdefault(item.image_id, []).append(
                    PanelRow(item.question, list(sized), titles, boxes)
                )
    for image_id, rows in figure_rows.items():
        _save_figure(
            out / "figures" / f"{image_id}.png", data.files[image_id], rows, f"image {image_id}"
        )
    for failure in chunk.failures:
        for item in data.questions[failure["id"]]:
            records[item.question_id] = {**_question_record(item), "error": failure["error"]}
    ordered = [
        records[item.question_id]
        for image_id in sorted({r["image_id"] for r in records.values()}, key=positions.get)
        for item in data.questions[image_id]
    ]
    return ordered, arrays


def _question_record(item: VQAItem) -> dict:
    record = {"question_id": item.question_id, "image_id": item.image_id, "question": item.question}
    if item.answers:
        record["human_answers"] = list(item.answers)
        record["answer_type"] = item.answer_type
        record["question_type"] = item.question_type
    return record


def explain_vqa(
    model: ExplainedModel,
    data: VQAData,
    out: str | Path,
    options: RunOptions | None = None,
    shard: Shard | None = None,
) -> RunResult | None:
    """Answer, explain and score every question of `data` into `out`; resumable and
    shardable (module docstring). Returns the metrics on the main process, None elsewhere."""
    return _run("vqa", _vqa_chunk, model, data, list(data.questions), out, options, shard)


# ----------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    """What a finished run reports: its metrics (as in `metrics.json`) and this process's
    timing (`timing.json`: `images_explained` in this session, seconds, images per second)."""

    metrics: dict
    timing: dict


def _run(
    task: str,
    explain_chunk: Callable[..., tuple[list[dict], dict[str, np.ndarray]]],
    model: ExplainedModel,
    data: CaptionData | VQAData,
    ids: list[int],
    out: str | Path,
    options: RunOptions | None,
    shard: Shard | None,
) -> RunResult | None:
    """The chunks of `ids` this process has left, explained by `explain_chunk`; then, on the
    main process once every rank is done, the merged outputs."""
    out, options = Path(out), options or RunOptions()
    if options.method in RULE_METHODS and not model.pixel_space:
        raise ValueError(
            f"{options.method} needs ReLUs for its backward rule, and {model.name} (a "
            "transformer) has GELUs; use a CAM method (--method gradcam, gradcam++, hirescam)"
        )
    shard = join_process_group() if shard is None else shard
    positions = {image_id: index for index, image_id in enumerate(ids)}
    run = _start(out, task, ids, model, options, shard)
    loader = ImageLoader(data.files, model.preprocess)
    started, explained = time.perf_counter(), 0
    for chunk in _progress(run, loader, options, shard):
        records, arrays = explain_chunk(model, data, chunk, positions, options, out)
        run.write_chunk(chunk.index, records, arrays)
        explained += len(chunk.items) + len(chunk.failures)
    seconds = time.perf_counter() - started
    timing = {
        "images_explained": explained,
        "seconds": round(seconds, 3),
        "images_per_second": round(explained / seconds, 3) if explained else None,
        "processes": shard.world,
    }
    wait_for_all_ranks()
    if not shard.is_main:
        return None
    layer = None if options.method in RULE_METHODS else model.layer  # pixel space: no layer
    metrics = _finish(run, out, task, data, options, layer)
    write_json(out / "timing.json", timing)
    return RunResult(metrics, timing)


def _start(
    out: Path, task: str, ids: list[int], model: ExplainedModel, options: RunOptions, shard: Shard
) -> ChunkedRun:
    """The chunked run in `out`, after checking a restart uses the options it began with."""
    stamp = {"task": task, "model": model.name, "layer": model.layer, "options": options.stamp()}
    path = out / "run.json"
    if path.exists():
        found = json.loads(path.read_text())
        if found != stamp:
            raise RuntimeError(
                f"{out} holds a run with other settings ({found}); this run is {stamp}. Use "
                "the same options to resume, or another output folder."
            )
    elif shard.is_main:
        write_json(path, stamp)
    return ChunkedRun(out, ids, options.chunk_size, shard)


def _progress(
    run: ChunkedRun, loader: ImageLoader, options: RunOptions, shard: Shard
) -> Iterator[LoadedChunk]:
    """This shard's pending chunks, with a progress bar counting images."""
    pending = run.pending()
    total = sum(len(run.chunk_items(index)) for index in pending)
    label = "explaining" if shard.world == 1 else f"rank {shard.rank}"
    with tqdm(
        total=total, unit="img", desc=label, disable=not options.progress, position=shard.rank
    ) as bar:
        for chunk in load_chunks(run, loader, options.workers):
            yield chunk
            bar.update(len(chunk.items) + len(chunk.failures))


def _finish(
    run: ChunkedRun, out: Path, task: str, data: Any, options: RunOptions, layer: str | None
) -> dict:
    """Merge the parts into the output files, metrics and report (`layer`: the explained one,
    None for a pixel-space method)."""
    for stale in run.parts.glob(".*.tmp"):  # left by a process killed mid-write; every rank
        stale.unlink(missing_ok=True)  # is past the barrier, so none is being written now
    records = run.merged_records  # re-read from disk on each pass: memory stays flat
    if task == "captions":
        results = (
            {"image_id": r["image_id"], "caption": r["caption"]}
            for r in records()
            if "error" not in r
        )
        write_json_list(out / "captions_results.json", results)
        detections = (
            {
                "image_id": r["image_id"],
                "category_id": m["category_id"],
                "bbox": m["box"],
                "score": m["box_score"],
            }
            for r in records()
            for m in r.get("mentions", [])
            if m["box"]
        )
        metrics = caption_metrics(records(), data.references, options, data.instances is not None)
    else:
        results = (
            {"question_id": r["question_id"], "answer": r["answer"]}
            for r in records()
            if "answer" in r
        )
        write_json_list(out / "vqa_results.json", results)
        detections = (
            {
                "image_id": r["image_id"],
                "category_id": r["category_ids"][0],
                "bbox": r["box"],
                "score": r["box_score"],
            }
            for r in records()
            if r.get("box") and r.get("category_ids")
        )
        metrics = vqa_metrics(records(), options, data.instances is not None)
    write_json_list(out / "boxes_results.json", detections)
    write_npz_stream(
        out / "maps.npz",
        (item for index in range(run.chunk_count) for item in run.arrays(index).items()),
    )
    write_atomically(
        out / "items.jsonl", lambda file: file.writelines(json.dumps(r) + "\n" for r in records())
    )
    metrics["layer"] = layer
    write_json(out / "metrics.json", metrics)
    write_atomically(out / "report.txt", lambda file: file.write(report_text(metrics)))
    return metrics


def write_json_list(path: str | Path, items: Iterable[Any]) -> Path:
    """A JSON list written item by item (never all in memory), atomically."""

    def write(file: Any) -> None:
        file.write("[")
        for position, item in enumerate(items):
            file.write(("," if position else "") + "\n " + json.dumps(item))
        file.write("\n]\n")

    return write_atomically(path, write)


def write_npz_stream(path: str | Path, arrays: Iterable[tuple[str, np.ndarray]]) -> Path:
    """An `.npz` (what `np.savez_compressed` writes, readable by `np.load`) written one array at
    a time, atomically, with fixed timestamps so equal arrays give equal bytes."""

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
            for key, array in arrays:
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array))

    return write_atomically(path, write, "wb")


def read_map(out: str | Path, key: int, size: Sequence[int] | None = None) -> Explanation:
    """The maps stored for image (captions) or question (VQA) `key` in a finished run, as an
    `Explanation` upsampled to `size` (the image's (height, width); raw maps when None)."""
    with np.load(Path(out) / "maps.npz") as stored:
        raw = torch.from_numpy(stored[str(key)]).float()
    return Explanation.from_raw(raw, torch.zeros(raw.shape[:-2]), size, "stored")


# ----------------------------------------------------------------------------- command lines


def add_dataset_arguments(
    parser: Any, *, layout: str, root_holds: str, instances_for: str, words: str, limit: str
) -> Any:
    """The data options both dataset scripts share, in a group the script adds its own
    annotation files to (returned). The strings say what differs in the help."""
    data = parser.add_argument_group(f"data ({layout} under --root)")
    data.add_argument(
        "--root",
        default="data/shapes",
        help=f"dataset root holding {root_holds} (default: %(default)s)",
    )
    data.add_argument("--split", default="val", help="split name, e.g. val (default: val)")
    data.add_argument("--images", help="image folder (default: ROOT/SPLIT2014)")
    data.add_argument(
        "--instances",
        help=f"COCO instances file for {instances_for} (default: "
        "ROOT/annotations/instances_SPLIT2014.json when it exists)",
    )
    data.add_argument(
        "--no-instances", action="store_true", help="no box metrics even if instances exist"
    )
    data.add_argument(
        "--categories",
        choices=["coco", "shapes"],
        default="coco",
        help=f"without an instances file: {words} (default: coco)",
    )
    data.add_argument("--limit", type=int, help=f"only {limit}")
    return data


def add_model_arguments(parser: Any, *, checkpoint: str, hf: str, out: str) -> Any:
    """`--checkpoint`, `--hf` and `--out` in a "model" group the script adds its own options to
    (returned)."""
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", help=checkpoint)
    model.add_argument(
        "--hf", metavar="NAME_OR_PATH", help=f"{hf} from the Hugging Face hub or a local folder"
    )
    parser.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    return model


def optional_file(given: str | None, default: Path, off: bool) -> str | Path | None:
    """An explicit file, else `default` when it exists; None when switched off."""
    if off:
        return None
    if given is not None:
        return given
    return default if default.is_file() else None


def print_run(result: RunResult | None, out: str | Path) -> dict | None:
    """Print a finished run's report and its JSON line (returned); None on torchrun ranks
    other than 0, which leave merging and reporting to rank 0."""
    if result is None:
        return None
    print(report_text(result.metrics), end="")
    print(f"outputs in {out}")
    line = {**summary(result.metrics), **result.timing}
    print(json.dumps(line))
    return line


def add_run_arguments(parser: Any, *, pointing_tolerance: float = 15.0, deletion: int = 20) -> None:
    """The options every dataset script shares (a `RunOptions` each), on an argparse parser."""
    group = parser.add_argument_group("explaining and scoring")
    group.add_argument(
        "--layer",
        metavar="NAME",
        help="the layer whose output is explained (default: the model's own: encoder.features "
        "for the bundled models, a late vision layer for BLIP and ViLT)",
    )
    group.add_argument(
        "--method",
        default="gradcam",
        choices=EXPLAINER_METHODS,
        help="how maps are made: a CAM method at --layer, or guided_backprop / deconvnet in "
        "pixel space (default: %(default)s)",
    )
    group.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="blur every map by a Gaussian of SIGMA model-input pixels before boxes, pointing, "
        "deletion and figures (maps.npz keeps the maps unblurred), so the speckles of a "
        "guided-backprop map join one region (default: no blur)",
    )
    group.add_argument(
        "--box-threshold",
        type=float,
        default=0.15,
        help="a map's box surrounds the largest region above this fraction of its maximum "
        "(Grad-CAM paper: 0.15; the report also sweeps 0.10-0.50) (default: %(default)s)",
    )
    group.add_argument(
        "--pointing-tolerance",
        type=float,
        default=pointing_tolerance,
        help="pointing game: a map's peak may lie this many pixels outside a ground-truth box "
        "(15 for ~224 px photos, 0 for small images) (default: %(default)s)",
    )
    group.add_argument(
        "--deletion-steps",
        type=int,
        default=deletion,
        help="deletion AUC in this many steps for the map, a random map and a centre Gaussian "
        "(3 x (steps + 1) forward passes per item); 0 skips it (default: %(default)s)",
    )
    group.add_argument(
        "--save-figures",
        type=int,
        nargs="?",
        const=16,
        default=0,
        metavar="N",
        help="write overlays with boxes to OUT/figures for the first N images (16 when N is "
        "left out)",
    )
    speed = parser.add_argument_group("batching and workers")
    speed.add_argument(
        "--batch-size", type=int, default=16, help="images per explain call (default: %(default)s)"
    )
    speed.add_argument(
        "--chunk-size",
        type=int,
        default=64,
        help="images per chunk, the unit written to disk, resumed and split across ranks; "
        "a restart must use the same value (default: %(default)s)",
    )
    speed.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader processes reading images (0: in the main process) (default: %(default)s)",
    )
    speed.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, ... ; auto: this rank's GPU when there is one (default: auto)",
    )
    speed.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_arguments(args: Any) -> RunOptions:
    """The `RunOptions` of parsed `add_run_arguments` arguments (and `--max-length`,
    `--beam-size`, `--top-k` when the script has them)."""
    return RunOptions(
        method=args.method,
        smooth=args.smooth,
        box_threshold=args.box_threshold,
        pointing_tolerance=args.pointing_tolerance,
        deletion_steps=args.deletion_steps,
        max_length=getattr(args, "max_length", 20),
        beam_size=getattr(args, "beam_size", 1),
        top_k=getattr(args, "top_k", 3),
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        save_figures=args.save_figures,
        workers=args.workers,
        progress=not args.no_progress,
    )
