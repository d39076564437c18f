"""A VQA run's chunk: answer each question, map the top answers, score the top answer's map
against the objects the question names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmcam.boxes.from_maps import resize_map, smooth_maps
from mmcam.data.annotations import (
    VQAItem,
)
from mmcam.data.images import load_image
from mmcam.data.vocab import tokenize
from mmcam.evaluation.vqa_accuracy import vqa_accuracy
from mmcam.runs.chunks import (
    LoadedChunk,
    Shard,
)
from mmcam.runs.faithfulness import faithfulness_scores
from mmcam.runs.inputs import LoadedImage, VQAData, image_batches, image_notes, read_vqa_split
from mmcam.runs.models import ExplainedModel, load_run_vqa
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import vqa_bad_data, vqa_pointing_lines, vqa_report_lines, vqa_summary
from mmcam.runs.report import vqa_metrics
from mmcam.runs.run import Records, RunResult, Task
from mmcam.runs.scoring import (
    answer_score,
    ground_truth_boxes,
    save_run_figure,
    score_map,
    stored_maps,
)
from mmcam.visualize import PanelRow

__all__ = ["VQA", "explain_vqa"]


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
    explainer = model.vqa_explainer(options.method)
    answer_index = {answer: i for i, answer in enumerate(model.model.answers)}
    device = model.device
    records: dict[int, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    asked: list[tuple[VQAItem, LoadedImage]] = []
    for image_id, loaded in chunk.items:
        for item in data.questions[image_id]:
            record = {**_question_record(item), **image_notes(data, image_id, loaded)}
            reason = _unusable(model.model, item.question)
            if reason:
                record["skipped"] = reason
            else:
                asked.append((item, loaded))
            records[item.question_id] = record
    figure_rows: dict[int, list[PanelRow]] = {}
    for batch in image_batches(asked, options.batch_size):
        images = torch.stack([loaded.pixels for _, loaded in batch]).to(device)
        questions = [item.question for item, _ in batch]
        result = explainer.explain(
            images,
            questions,
            top_k=options.top_k,
            method=options.method,
            perturbation=options.perturbation(),
        )
        for row, (item, loaded) in enumerate(batch):
            record = records[item.question_id]
            answer = result.answers[row][0]
            arrays[str(item.question_id)] = stored_maps(result.maps, row)
            record["answer"] = answer
            record["top_answers"] = result.answers[row]
            record["probabilities"] = result.probabilities[row].tolist()
            if result.question_relevance is not None:  # a single-stream transformer's answers
                record["question_tokens"] = result.question_tokens[row]
                record["question_relevance"] = result.question_relevance[row].tolist()
            if item.answers:
                record["accuracy"] = vqa_accuracy(answer, item.answers)
            mentions = data.categories.find(tokenize(item.question))
            truth = None
            # ground truth drawn on another size than the file's is not compared with
            if data.instances is not None and "size_mismatch" not in record:
                truth = []
                for mention in mentions:
                    truth += ground_truth_boxes(
                        data.instances, item.image_id, mention.category_id, mention.color
                    )
            record["categories"] = [mention.category for mention in mentions]
            record["category_ids"] = [mention.category_id for mention in mentions]
            maps = smooth_maps(result.maps.maps[row], options.smooth)  # [k, H, W]
            picture = load_image(data.files[item.image_id])  # refined boxes read the image
            record.update(score_map(maps[0], loaded.size, truth, options, picture))
            record.update(
                faithfulness_scores(
                    images[row],
                    maps[0],
                    answer_score(model.model, item.question, answer_index[answer]),
                    options,
                    item.question_id,
                )
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
        save_run_figure(
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


def _vqa_metrics(records: Records, data: VQAData, options: RunOptions) -> dict:
    return vqa_metrics(records(), options, data.instances is not None)


def _named_objects(records: Iterable[dict]) -> Iterator[tuple[int, int, dict]]:
    """Every question that names a category, with its image and first category."""
    return ((r["image_id"], r["category_ids"][0], r) for r in records if r.get("category_ids"))


VQA = Task(
    id="vqa",
    read_split=read_vqa_split,
    load_model=load_run_vqa,
    items=lambda data: list(data.questions),
    chunk=_vqa_chunk,
    explainer=ExplainedModel.vqa_explainer,
    results_file="vqa_results.json",
    result=lambda r: (
        {"question_id": r["question_id"], "answer": r["answer"]} if "answer" in r else None
    ),
    metrics=_vqa_metrics,
    detected=_named_objects,
    named=lambda records: {
        (image, category) for image, category, r in _named_objects(records) if "answer" in r
    },
    scored_maps=lambda r: iter([(r["question_id"], 0, r)]),
    report_lines=vqa_report_lines,
    summary=vqa_summary,
    bad_data_summary=vqa_bad_data,
    report_after_boxes=vqa_pointing_lines,
)


def explain_vqa(
    model: ExplainedModel,
    data: VQAData,
    out: str | Path,
    options: RunOptions | None = None,
    shard: Shard | None = None,
) -> RunResult | None:
    """Answer, explain and score every question of `data` into `out`; resumable and
    shardable (module docstring). Returns the metrics on the main process, None elsewhere."""
    return VQA.explain(model, data, out, options, shard)
