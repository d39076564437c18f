"""Explain a whole dataset: every image of a COCO captions file, or every VQA v2 question.

`explain_captions` captions each image, maps every word, and scores the maps of the words
that name a category (`mmcam.evaluation.word_categories`) against the COCO instances, when given;
`explain_vqa` answers each question, maps the top answers, and scores the top answer's map
against the instances the question names. Both also measure faithfulness (deletion, insertion
and ROAD, `mmcam.runs.faithfulness`) for the map and two baselines, a random map and a centre
Gaussian: the generated caption's teacher-forced log-probability (against the whole caption's
map), or the top answer's logit, as pixels are removed or put back.

The work goes through `mmcam.runs.chunks`: the items (images) are cut into fixed chunks; a
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
                           pixel-space methods (guided backprop, deconvnet, occlusion,
                           RISE) the [0, 1] maps at input resolution, as float16;
                           `read_map` resizes one to its
                           image's pixels
    items.jsonl            one record per image (captions) or question (VQA), every detail
    metrics.json, report.txt   see `mmcam.runs.report` and `mmcam.runs.readout`
    figures/               overlays with boxes, with `save_figures`
    run.json               the fingerprint (data and its hashes, model hash, layer, options,
                           ids); a restart with a different one is refused (--overwrite
                           starts afresh), see `mmcam.runs.output_folder`
    .lock                  held (flock) by the process writing the folder; a second refuses
    timing.json            this process's images, seconds and images/s (the only file that
                           differs between two runs of the same command)
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mmcam.data.annotations import CocoInstance
from mmcam.data.files import RefusedInput, RefusedRun, write_atomically, write_json
from mmcam.evaluation.detection_metrics import box_detection_metrics
from mmcam.methods import registry
from mmcam.runs.chunks import (
    ChunkedRun,
    LoadedChunk,
    Shard,
    join_process_group,
    load_chunks,
    wait_for_all_ranks,
)
from mmcam.runs.inputs import (
    CaptionData,
    ImageLoader,
    VQAData,
)
from mmcam.runs.models import (
    ExplainedModel,
)
from mmcam.runs.options import RunOptions
from mmcam.runs.output_folder import claim, ids_digest
from mmcam.runs.outputs import write_json_list, write_npz_stream
from mmcam.runs.readout import report_text
from mmcam.runs.scoring import PIXEL_SPACE_KINDS

__all__ = ["RunResult", "Task"]

# The layout of the records a run's parts hold. Raised when it changes (2: deletion AUC keyed
# "map", both boxes' scores kept; 3: refined boxes' flags and evidence score, ties in random
# orders, insertion AUC, ROAD and the map's support), so a resume never mixes records of two
# layouts.
RECORDS_LAYOUT = 3


# ----------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    """What a finished run reports: its metrics (as in `metrics.json`) and this process's
    timing (`timing.json`: `images_explained` in this session, seconds, images per second)."""

    metrics: dict
    timing: dict


Records = Callable[[], Iterator[dict]]  # a run's merged records, read afresh on each call


@dataclass(frozen=True)
class Task:
    """What the engine needs of a task (captions, VQA; `mmcam.runs.tasks` holds them by id): its
    inputs (`read_split(split_paths, instances, limit)`; `items`: the ids a run explains) and
    model (`load_model`), its chunk (`chunk(model, data, chunk, positions, options, out)` ->
    records and raw maps) and the explainer that uses for a method (`explainer`), the line of
    its results file each record gives (`result`, None for none), its metrics, the records'
    boxes as detections (`detected`: (image id, category id, record holding the boxes)) and the
    image-category pairs they are scored over (`named`), where a record's maps and their scores
    are (`scored_maps`), and its lines of the report and the summary (`mmcam.runs.readout`)."""

    id: str
    read_split: Callable[..., Any]
    load_model: Callable[..., ExplainedModel]
    items: Callable[[Any], list[int]]
    chunk: Callable[..., tuple[list[dict], dict[str, np.ndarray]]]
    explainer: Callable[
        [ExplainedModel, str], Any
    ]  # (model, method) -> the explainer its chunk uses
    results_file: str
    result: Callable[[dict], dict | None]
    metrics: Callable[[Records, Any, RunOptions], dict]
    detected: Callable[[Iterable[dict]], Iterator[tuple[int, int, dict]]]
    named: Callable[[Iterable[dict]], set[tuple[int, int]]]
    report_lines: Callable[[Mapping[str, Any]], list[str]]  # above the box lines
    summary: Callable[[Mapping[str, Any]], dict[str, Any]]  # the headline figures of the task
    bad_data_summary: Callable[[Mapping[str, Any]], dict[str, Any]]
    scored_maps: Callable[[dict], Iterator[tuple[int, Any, dict]]]  # (maps.npz key, row, scores)
    report_after_boxes: Callable[[Mapping[str, Any]], list[str]] = lambda metrics: []

    def explain(
        self,
        model: ExplainedModel,
        data: Any,
        out: str | Path,
        options: RunOptions | None = None,
        shard: Shard | None = None,
    ) -> RunResult | None:
        """Explain and score every item of `data` into `out`; resumable and shardable (module
        docstring). Returns the metrics on the main process, None on the others."""
        return run_dataset(self, model, data, self.items(data), out, options, shard)


def run_dataset(
    task: Task,
    model: ExplainedModel,
    data: CaptionData | VQAData,
    ids: list[int],
    out: str | Path,
    options: RunOptions | None,
    shard: Shard | None,
) -> RunResult | None:
    """The chunks of `ids` this process has left, explained by `task.chunk`; then, on the
    main process once every rank is done, the merged outputs."""
    out, options = Path(out), options or RunOptions()
    kind = registry.get(options.method).kind
    if kind == "rule" and not model.pixel_space:
        raise RefusedInput(
            f"{options.method} needs ReLUs for its backward rule, and {model.name} (a "
            "transformer) has GELUs; use a CAM method (--method gradcam, gradcam++, hirescam) "
            "or a perturbation method (--method occlusion, rise)"
        )
    try:  # a method the task's explainer cannot run on this model: refused before any file
        task.explainer(model, options.method).method(options.method)
    except ValueError as error:
        needs = " (attention methods need a transformer: BLIP captioning or ViLT, --hf)"
        raise RefusedInput(f"{error}{needs if kind == registry.ATTENTION else ''}") from None
    shard = join_process_group() if shard is None else shard
    fingerprint = {
        "records": RECORDS_LAYOUT,
        "task": task.id,
        "model": model.source,
        "layer": model.layer,
        "options": options.stamp(),
        "data": data.sources,
        "ids": ids_digest(ids),
    }
    lock = claim(out, fingerprint, options.overwrite, shard.is_main)
    try:
        return _run(task, model, data, ids, out, options, shard)
    finally:
        if lock is not None:
            lock.release()


def _run(
    task: Task,
    model: ExplainedModel,
    data: CaptionData | VQAData,
    ids: list[int],
    out: Path,
    options: RunOptions,
    shard: Shard,
) -> RunResult | None:
    positions = {image_id: index for index, image_id in enumerate(ids)}
    run = ChunkedRun(out, ids, options.chunk_size, shard)
    loader = ImageLoader(data.files, model.preprocess)
    started, explained = time.perf_counter(), 0
    for chunk in _progress(run, loader, options, shard):
        records, arrays = task.chunk(model, data, chunk, positions, options, out)
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
    kind = registry.get(options.method).kind
    layer = None if kind in PIXEL_SPACE_KINDS else model.layer
    if kind == registry.ATTENTION and model.attention is not None:  # the whole stack, not one
        layer = f"every attention layer after {model.attention.entry}"
    metrics = _finish(run, out, task, data, options, layer)
    write_json(out / "timing.json", timing)
    _check_some_image_loaded(run)
    return RunResult(metrics, timing)


def _check_some_image_loaded(run: ChunkedRun) -> None:
    """Raise when every image of the run failed to load: the outputs are empty, and a script
    must not exit 0 on them."""
    images, failed = set(), {}
    for record in run.merged_records():
        images.add(record["image_id"])
        if "error" in record:
            failed.setdefault(record["image_id"], record["error"])
    if images and len(failed) == len(images):
        first = next(iter(failed.values()))
        raise RefusedRun(
            f"every one of the {len(images)} images failed to load (the first: {first}); "
            "check the image folder and the annotation files' file names"
        )


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
    run: ChunkedRun, out: Path, task: Task, data: Any, options: RunOptions, layer: str | None
) -> dict:
    """Merge the parts into the output files, metrics and report (`layer`: the explained one,
    None for a pixel-space method)."""
    for stale in run.parts.glob(".*.tmp"):  # left by a process killed mid-write; every rank
        stale.unlink(missing_ok=True)  # is past the barrier, so none is being written now
    records = run.merged_records  # re-read from disk on each pass: memory stays flat
    results = (line for line in map(task.result, records()) if line is not None)
    write_json_list(out / task.results_file, results)
    metrics = task.metrics(records, data, options)
    write_json_list(out / "boxes_results.json", _detections(records(), task, options.boxes))
    if data.instances is not None:
        for kind in ("threshold", "refined"):  # both boxes; the default's are the top figures
            scores = _box_detection(
                list(_detections(records(), task, kind)), data.instances, records(), task
            )
            metrics[f"boxes_{kind}"] = {k: v for k, v in scores.items() if k != "box_detection"}
            if kind == options.boxes:
                metrics.update(scores)
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
    _warn_of_data_mismatches(metrics["bad_data"])
    return metrics


def _warn_of_data_mismatches(bad: dict) -> None:
    """A warning for what the annotations and the files disagree on (counted in the report)."""
    unknown = bad.get("unknown_images", {"count": 0})
    if unknown["count"]:
        warnings.warn(
            f"{unknown['captions']} captions name images missing from the captions file's "
            f"'images' list (image ids {_first_ids(unknown['ids'])}); they were skipped",
            stacklevel=3,
        )
    resized = bad["size_mismatch"]
    if resized["count"]:
        first = resized["ids"][0]
        sizes = resized["sizes"][str(first)]
        warnings.warn(
            f"images whose size differs from their annotation's: {resized['count']} (image "
            f"{first}: {_size_text(sizes['file'])} in the file, "
            f"{_size_text(sizes['annotation'])} in the annotation); they were explained at the "
            "file's size and not scored against the annotation's boxes",
            stacklevel=3,
        )


def _first_ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:3])) + (", ..." if len(ids) > 3 else "")


def _size_text(size: list[int]) -> str:
    height, width = size
    return f"{width}x{height}"


def _detections(records: Iterable[dict], task: Task, kind: str) -> Iterator[dict]:
    """COCO detection results of a run's records: each shape word's (captions) or question's
    (VQA) box of `kind` ("threshold": the map's own, "refined": map + image)."""
    box, score = f"{kind}_box", f"{kind}_box_score"
    for image_id, category_id, found in task.detected(records):
        if found.get(box):
            yield {"image_id": image_id, "category_id": category_id, "bbox": found[box],
                   "score": found[score]}  # fmt: skip


def _box_detection(
    detections: list[dict],
    instances: dict[int, list[CocoInstance]],
    records: Iterable[dict],
    task: Task,
) -> dict:
    """COCO AP (pycocotools) and CorLoc of `detections` over the image-category pairs the
    captions' words or the questions named."""
    named = task.named(records)
    truth = [        {"image_id": i.image_id, "category_id": i.category_id, "bbox": list(i.bbox),
         "area": i.area, "iscrowd": i.iscrowd}
        for image_id in sorted({image for image, _ in named})
        for i in instances.get(image_id, [])
    ]  # fmt: skip
    scores = box_detection_metrics(detections, truth, named)
    return {**{k: v for k, v in scores.items() if k != "counts"}, "box_detection": scores["counts"]}
