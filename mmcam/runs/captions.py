"""A captions run's chunk: caption each image, map every word, score the words that name a
category."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcam.boxes.from_maps import resize_map, smooth_maps
from mmcam.data.images import load_image
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.runs.chunks import (
    LoadedChunk,
    Shard,
)
from mmcam.runs.faithfulness import faithfulness_scores
from mmcam.runs.inputs import CaptionData, image_batches, image_notes, read_caption_split
from mmcam.runs.models import ExplainedModel, load_run_captioner
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import caption_bad_data, caption_report_lines, caption_summary
from mmcam.runs.report import caption_metrics
from mmcam.runs.run import Records, RunResult, Task
from mmcam.runs.scoring import (
    caption_score,
    ground_truth_boxes,
    save_run_figure,
    score_map,
    stored_maps,
)
from mmcam.visualize import PanelRow

__all__ = ["CAPTIONS", "explain_captions"]


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
    writer = CaptionExplainer(model.model, model.layer, to_grid=model.to_grid)  # the captions
    explainer = model.caption_explainer(options.method)  # their maps
    device = model.device
    records: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    for batch in image_batches(chunk.items, options.batch_size):
        images = torch.stack([loaded.pixels for _, loaded in batch]).to(device)
        captions = writer.generate(images, options.max_length, options.beam_size)
        spoken = [row for row, caption in enumerate(captions) if caption]
        result = None
        if spoken:
            result = explainer.explain(
                images[spoken],
                [captions[row] for row in spoken],
                method=options.method,
                perturbation=options.perturbation(),
            )
        for row, (image_id, loaded) in enumerate(batch):
            caption = captions[row]
            text = model.caption_text(caption) if model.caption_text else None
            record: dict[str, Any] = {"image_id": image_id, "size": list(loaded.size)}
            record.update(image_notes(data, image_id, loaded))
            # ground truth drawn on another size than the file's is not compared with
            instances = None if "size_mismatch" in record else data.instances
            if result is None or row not in spoken:
                records.append({**record, "caption": text or "", "words": [], "mentions": []})
                continue
            index = spoken.index(row)
            words = result.word_labels(index)
            count = len(words)
            word_maps = smooth_maps(result.words.maps[index, :count], options.smooth)  # [T, H, W]
            arrays[str(image_id)] = stored_maps(result.words, index, count)
            record["caption"] = text if text is not None else result.texts[index]
            record["words"] = words
            record["word_scores"] = result.words.scores[index, :count].tolist()
            mentions = []
            picture = load_image(data.files[image_id])  # refined boxes read the original image
            for mention in data.categories.find(words):
                truth = ground_truth_boxes(instances, image_id, mention.category_id, mention.color)
                mentions.append(
                    {
                        "word": mention.head,
                        "phrase": " ".join(words[mention.start : mention.end]),
                        "category_id": mention.category_id,
                        "category": mention.category,
                        "color": mention.color,
                        **score_map(word_maps[mention.head], loaded.size, truth, options, picture),
                    }
                )
            record["mentions"] = mentions
            record.update(
                faithfulness_scores(
                    images[row],
                    smooth_maps(result.caption.maps[index], options.smooth),
                    caption_score(model.model, caption),
                    options,
                    image_id,
                )
            )
            if positions[image_id] < options.save_figures:
                boxes = [[] for _ in words]
                for mention in mentions:
                    boxes[mention["word"]] = [mention["box"]] if mention["box"] else []
                sized = resize_map(word_maps.float().cpu(), loaded.size)
                save_run_figure(
                    out / "figures" / f"{image_id}.png",
                    data.files[image_id],
                    [PanelRow(f"image {image_id}", list(sized), words, boxes)],
                    record["caption"],
                )
            records.append(record)
    records += [{"image_id": f["id"], "error": f["error"]} for f in chunk.failures]
    records.sort(key=lambda record: positions[record["image_id"]])
    return records, arrays


def _caption_metrics(records: Records, data: CaptionData, options: RunOptions) -> dict:
    metrics = caption_metrics(records(), data.references, options, data.instances is not None)
    metrics["bad_data"]["unknown_images"] = {
        "count": len(data.unknown_images),
        "ids": list(data.unknown_images),
        "captions": sum(data.unknown_images.values()),
    }
    return metrics


def _mentions(records: Iterable[dict]) -> Iterator[tuple[int, int, dict]]:
    """Every word that names a category, with its image and category."""
    return ((r["image_id"], m["category_id"], m) for r in records for m in r.get("mentions", []))


CAPTIONS = Task(
    id="captions",
    read_split=read_caption_split,
    load_model=load_run_captioner,
    items=lambda data: list(data.files),
    chunk=_caption_chunk,
    explainer=ExplainedModel.caption_explainer,
    results_file="captions_results.json",
    result=lambda r: None if "error" in r else {"image_id": r["image_id"], "caption": r["caption"]},
    metrics=_caption_metrics,
    detected=_mentions,
    named=lambda records: {(image, category) for image, category, _ in _mentions(records)},
    scored_maps=lambda r: ((r["image_id"], m["word"], m) for m in r.get("mentions", [])),
    report_lines=caption_report_lines,
    summary=caption_summary,
    bad_data_summary=caption_bad_data,
)


def explain_captions(
    model: ExplainedModel,
    data: CaptionData,
    out: str | Path,
    options: RunOptions | None = None,
    shard: Shard | None = None,
) -> RunResult | None:
    """Caption, explain and score every image of `data` into `out`; resumable and shardable
    (module docstring). Returns the metrics on the main process, None on the others."""
    return CAPTIONS.explain(model, data, out, options, shard)
