"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018) on a captioner and a VQA model:
does each method's map change when the model's weights are randomised?

Model-parameter randomisation: the layers (modules owning parameters, in forward order, or
--layers) are re-initialised with their own reset_parameters() from the output down, cascading
and one at a time, on copies of the model; the maps of the same targets (every word of each
caption and the whole caption, the trained model's top answers of each question) are compared
with the trained model's maps by Spearman rank correlation (signed and absolute), SSIM and HOG
similarity. A method whose maps stay alike after randomisation does not show what the model
learnt. Data randomisation: with --vqa-twin / --captioner-twin (a model trained with
mmcam train-vqa --permute-answers / mmcam train-captioner --shuffle-captions) the twin's maps
of the same targets are compared too.

Box measure (when the split has instances; --no-boxes skips it, --boxes-only runs only it,
quick enough for a larger --limit): the default method's default boxes (models/box_settings.json:
HiResCAM at encoder.stem, refined, on the bundled models) of the targets naming an object in
the image, from the trained model and from the cascading copies with the top layer and with
every layer re-initialised; boxes that stay as accurate with a random model do not depend on
the model (mmcam.studies.sanity_boxes states the criterion).

    mmcam sanity --root data/shapes --split test --limit 100 --boxes-only

    mmcam sanity --root data/shapes --split val --limit 4

Writes OUT/metrics.json, OUT/sanity_curves.png and OUT/sanity_<task>_<n>.png, prints a table
per task and order, and ends with one JSON line holding the mean Spearman correlation per
method after full cascading randomisation, the twin's, and the time against one plain pass.
`python scripts/sanity_check.py` takes the same flags.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from mmcam.boxes.settings import box_settings, default_method
from mmcam.cli.options import add_device, add_limit, add_out, add_root, add_split, command_parser
from mmcam.core.bundled import bundled_file
from mmcam.core.model_state import explaining
from mmcam.data.annotations import split_paths
from mmcam.data.files import write_json
from mmcam.data.images import load_image
from mmcam.evaluation.map_similarity import map_similarity
from mmcam.methods import registry
from mmcam.runs.captions import CAPTIONS
from mmcam.runs.models import ExplainedModel, run_device
from mmcam.runs.tasks import TASKS, Task, chosen
from mmcam.runs.vqa import VQA
from mmcam.studies.sanity import (
    ExplainedRows,
    caption_rows,
    checked_methods,
    model_randomization,
    sanity_methods,
    signed_maps,
    vqa_rows,
)
from mmcam.studies.sanity_boxes import (
    BoxSanity,
    box_randomization,
    caption_boxed_rows,
    vqa_boxed_rows,
)
from mmcam.studies.sanity_report import (
    box_table,
    full_randomization,
    map_grids,
    plot_curves,
    result_metrics,
    similarity_table,
)

DEFAULT_TWIN = bundled_file("vqa_random_labels")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    p = command_parser(__doc__, prog)
    add_root(p)
    add_split(p)
    add_limit(p, default=4)
    p.add_argument("--task", choices=["both", *TASKS], default="both")
    p.add_argument("--checkpoint", help="model folder for --task captions or vqa")
    p.add_argument("--hf", metavar="NAME_OR_PATH", help="Hugging Face model for --task")
    p.add_argument("--layer", help="explained (CAM) layer (default: the model's)")
    p.add_argument("--layers", nargs="+", help="layers to randomise, input to output "
                   "(default: every module owning parameters, in forward order)")  # fmt: skip
    p.add_argument(
        "--methods",
        nargs="+",
        default=checked_methods(),
        choices=sanity_methods(),
        type=registry.resolve,
    )  # a former id (guided_grad_cam) with a warning
    p.add_argument("--top-k", type=int, default=3, help="answers per question (default: 3)")
    p.add_argument("--occlusion", type=int, nargs=2, default=[32, 32], metavar=("WINDOW", "STRIDE"))
    p.add_argument("--seed", type=int, default=0, help="re-initialisation seed")
    p.add_argument("--vqa-twin", default=str(DEFAULT_TWIN) if DEFAULT_TWIN.is_dir() else None,
                   help="label-randomised VQA model folder (default: %(default)s)")  # fmt: skip
    p.add_argument("--captioner-twin", help="caption-shuffled captioner folder")
    p.add_argument("--grids", type=int, default=2, help="images drawn per task (default: 2)")
    p.add_argument("--no-boxes", action="store_true",
                   help="skip the box measure (default boxes from randomised models)")  # fmt: skip
    p.add_argument("--boxes-only", action="store_true",
                   help="only the box measure: no map similarity, twin or figures")  # fmt: skip
    add_device(p)
    add_out(p, "out/sanity_check", "metrics.json, sanity_curves.png and sanity_<task>_<n>.png")
    return p


def _task_rows(task: Task, loaded: ExplainedModel, args: argparse.Namespace) -> tuple:
    """The rows of fixed targets, the images drawn, their titles, and the rows naming an object
    with a ground-truth box (`BoxedRow`s; empty without an instances file)."""
    paths = {**split_paths(args.root, args.split), "vqa_annotations": None}  # no answers needed
    instances = paths["instances"] if Path(paths["instances"]).is_file() else None
    data = task.read_split(paths, instances, args.limit)
    ids = list(data.files)
    pictures = [load_image(data.files[i]) for i in ids]
    images = torch.stack([loaded.preprocess(p) for p in pictures]).to(loaded.device)
    return TASK_ROWS[task.id](loaded, data, ids, images, pictures, args)


def _caption_rows(loaded: ExplainedModel, data, ids, images, pictures, args) -> tuple:
    """Each image's generated caption: the whole caption and each word."""
    model = loaded.model
    with explaining(model, loaded.device), torch.no_grad():
        captions = model.generate(images)
    rows = caption_rows(model, images, captions, loaded.layer, loaded.to_grid)
    caption_row = [rows.kinds.index("caption") + i for i in range(len(captions))]
    titles = [f"caption: {rows.labels[r]}" for r in caption_row]
    words = [model.words(caption) for caption in captions]
    boxed = (
        caption_boxed_rows(words, ids, pictures, data.categories, data.instances)
        if data.instances is not None
        else []
    )
    return rows, pictures, caption_row, titles, boxed


def _vqa_rows(loaded: ExplainedModel, data, ids, images, pictures, args) -> tuple:
    """Each image's first question: its top answers."""
    questions = [data.questions[i][0].question for i in ids]
    rows = vqa_rows(loaded.model, images, questions, loaded.layer, args.top_k, loaded.to_grid)
    best = [i * args.top_k for i in range(len(questions))]
    titles = [f"{q} -> {rows.labels[r]}" for q, r in zip(questions, best, strict=True)]
    boxed = (
        vqa_boxed_rows(questions, ids, pictures, data.categories, data.instances, args.top_k)
        if data.instances is not None
        else []
    )
    return rows, pictures, best, titles, boxed


# the sanity check's targets of each task (`mmcam.runs.tasks`), by its id
TASK_ROWS = {CAPTIONS.id: _caption_rows, VQA.id: _vqa_rows}


def _box_measure(rows, boxed, loaded: ExplainedModel, args) -> BoxSanity:
    """The default method's default boxes of `boxed` rows, trained against randomised models."""
    default = default_method()
    method = default.method
    layer = default.layer_for(loaded.model, method) or loaded.layer
    at_default = replace(rows, layer=layer)
    return box_randomization(
        loaded.model, at_default, boxed, method, box_settings(method), layers=args.layers,
        seed=args.seed,
    )  # fmt: skip


def _twin_similarity(rows: ExplainedRows, trained: dict, twin: ExplainedModel, args) -> dict:
    """Each method's similarity between the trained model's maps and the twin's."""
    maps = signed_maps(rows, twin.model, args.methods, tuple(args.occlusion))
    return {m: map_similarity(trained[m], maps[m]).means() for m in args.methods}


def _similarity_check(task: Task, loaded, rows, pictures, kept, titles, args, line) -> tuple:
    """The parameter (and data) randomisation check of every method: its result, its metrics
    (also added to the JSON `line`) and its timing against one plain pass."""
    images = len(pictures)
    kept, pictures, titles = kept[: args.grids], pictures[: args.grids], titles[: args.grids]
    start, cpu = time.perf_counter(), time.process_time()
    trained = signed_maps(rows, loaded.model, args.methods, tuple(args.occlusion))
    plain, plain_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # modules that never run: reported below
        result = model_randomization(
            loaded.model, rows, methods=args.methods, layers=args.layers, seed=args.seed,
            occlusion_grid=tuple(args.occlusion), keep_rows=kept, trained_maps=trained,
        )  # fmt: skip
    check, check_cpu = time.perf_counter() - start, time.process_time() - cpu
    for order in ("cascading", "independent"):
        print(f"\n[{task.id}: {len(rows.kinds)} targets of {images} images]")
        print(similarity_table(result, order), end="")
    metrics = {"targets": len(rows.kinds), **result_metrics(result)}
    line["spearman_full_randomisation"][task.id] = full_randomization(result)
    line["spearman_abs_full_randomisation"][task.id] = full_randomization(result, "spearman_abs")
    twin_folder = {"captions": args.captioner_twin, "vqa": args.vqa_twin}[task.id]
    if twin_folder:
        twin = task.load_model(twin_folder, device=loaded.device, layer=args.layer)
        similarity = _twin_similarity(rows, result.trained_maps, twin, args)
        metrics["label_randomised_twin"] = {"model": twin_folder, **similarity}
        line["spearman_label_randomised_twin"][task.id] = {
            m: s["spearman"] for m, s in similarity.items()
        }
        print(f"label-randomised twin ({twin_folder}), mean spearman / ssim:")
        for m, s in similarity.items():
            print(f"  {m:>16}: {s['spearman']:+.3f}  {s['ssim']:+.3f}")
    map_grids(result, pictures, titles, Path(args.out), task.id)
    timing = {
        "plain_pass_s": round(plain, 2), "check_s": round(check, 2),
        "ratio": round(check / plain, 1), "plain_pass_cpu_s": round(plain_cpu, 2),
        "check_cpu_s": round(check_cpu, 2), "cpu_ratio": round(check_cpu / plain_cpu, 1),
    }  # fmt: skip
    print(f"{task.id}: check {check:.1f} s = {check / plain:.1f} x one plain pass of all "
          f"methods over the same targets ({plain:.2f} s); CPU time {check_cpu:.1f} s = "
          f"{check_cpu / plain_cpu:.1f} x {plain_cpu:.2f} s")  # fmt: skip
    return result, metrics, timing


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    """Run the checks `argv` asks for; the JSON line it printed."""
    args = build_parser(prog).parse_args(argv)
    if (args.checkpoint or args.hf) and args.task == "both":
        raise SystemExit("--checkpoint / --hf name one model: give --task captions or --task vqa")
    if args.boxes_only and args.no_boxes:
        raise SystemExit("--boxes-only and --no-boxes leave nothing to check: give one")
    device = run_device(args.device)
    out = Path(args.out)
    results, metrics, line = {}, {}, {"spearman_full_randomisation": {}}
    line["spearman_abs_full_randomisation"] = {}
    line["spearman_label_randomised_twin"] = {}
    line["boxes"] = {}
    timing = {}
    for task in chosen(args.task):
        loaded = task.load_model(args.checkpoint, device=device, layer=args.layer, hf=args.hf)
        rows, pictures, kept, titles, boxed = _task_rows(task, loaded, args)
        metrics[task.id] = {}
        if not args.boxes_only:
            results[task.id], metrics[task.id], timing[task.id] = _similarity_check(
                task, loaded, rows, pictures, kept, titles, args, line
            )
        if boxed and not args.no_boxes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # as above
                boxes = _box_measure(rows, boxed, loaded, args)
            print(box_table(boxes), end="")
            metrics[task.id]["boxes"] = line["boxes"][task.id] = boxes.metrics()
    if results:
        plot_curves(results, out / "sanity_curves.png")
    metrics["timing"] = timing
    metrics["command"] = vars(args)
    write_json(out / "metrics.json", metrics, indent=1)
    print(f"figures and metrics.json in {out}")
    line["timing"] = timing
    print(json.dumps(line))
    return line
