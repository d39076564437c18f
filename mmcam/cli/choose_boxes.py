"""Choose each method's box settings on the val split and write them to models/box_settings.json.

For every method (CAM methods at the bundled models' encoder.features and encoder.stem, LayerCAM
fused over encoder.stem, encoder.body and encoder.features, guided backprop in pixel space,
occlusion and RISE at the dataset scripts' settings on the first --perturbation-limit images) and
both tasks (caption shape words, VQA questions naming a shape), a dataset run maps the first
--limit val images; then the map's own box at thresholds 0.10-0.50 and the refined box (map +
image) at seeds x supports are scored (IoU >= 0.5). Each method gets the candidate with the best
accuracy averaged over its tasks and layers. The default method is the one of --trusted (the
methods that pass the sanity checks, `mmcam sanity`) whose default boxes are the most
accurate, averaged over the tasks, each task's model read at its best layer:

    mmcam make-shapes --out data/shapes --train 0 --val 500
    mmcam choose-boxes --limit 50

With --hf-captioner FOLDER it chooses the attention methods' settings instead (raw attention,
rollout, attention Grad-CAM, relevance) on that BLIP captioner's caption words and adds their
rows to the table, keeping every other row and the default:

    mmcam choose-boxes --hf-captioner models/blip_captioner --limit 100

Writes the table to --table (default: the bundled box_settings.json) and each method's dataset
runs to OUT/<task>/<method>@<layer>/; ends with one JSON line of the figures.
`python scripts/choose_boxes.py` takes the same flags.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mmcam.boxes.settings import BOX_SETTINGS
from mmcam.cli.options import add_limit, add_out, add_root, add_split, add_workers, command_parser
from mmcam.explainers.attention_stack import CaptionStackExplainer
from mmcam.methods import registry
from mmcam.runs.captions import CAPTIONS
from mmcam.runs.inputs import read_split
from mmcam.runs.models import load_run_captioner
from mmcam.runs.options import RunOptions
from mmcam.runs.tasks import TASKS
from mmcam.studies.box_choice import (
    Candidates,
    Scored,
    choose_default,
    choose_settings,
    score_run,
)
from mmcam.studies.comparisons import compared_cams

LAYERS = ("encoder.features", "encoder.stem")
FUSION = "encoder.stem,encoder.body,encoder.features"  # LayerCAM's fusion of every conv stage
# Their maps change when the model's weights are randomised (README, "Which method can I
# trust?"); Grad-CAM++, LayerCAM and guided backprop keep much of theirs.
TRUSTED = tuple(m.id for m in registry.methods(kind="gradient") if m.sanity)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    add_root(parser)
    add_split(parser, help="the split to choose on (default: %(default)s)")
    add_limit(parser, default=50)
    add_out(parser, "out/choose_boxes", "the dataset runs, OUT/<task>/<method>@<layer>/")
    parser.add_argument(
        "--table", default=str(BOX_SETTINGS),
        help="where the table (box_settings.json) is written (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--perturbation-limit",
        type=int,
        default=10,
        help="first N images for occlusion and RISE, a forward pass per perturbed copy "
        "(default: %(default)s)",
    )
    add_workers(parser)
    parser.add_argument(
        "--hf-captioner",
        metavar="FOLDER",
        help="choose the attention methods' settings instead, on this BLIP captioner's caption "
        "words (e.g. models/blip_captioner), and add their rows to --table, keeping the others",
    )
    parser.add_argument(
        "--trusted",
        nargs="+",
        default=list(TRUSTED),
        help="the methods the default may be: those whose maps pass the sanity checks "
        "(default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    """Choose the settings on `argv`'s split, write the table; the JSON line it printed."""
    args = build_parser(prog).parse_args(argv)
    if args.hf_captioner:
        return choose_attention(args)
    start = time.perf_counter()
    data = read_split(args.root, args.split, args.limit)
    few = read_split(args.root, args.split, min(args.perturbation_limit, args.limit))
    runs = [(m, layer) for m in compared_cams() for layer in LAYERS]
    runs += [("layercam", FUSION), ("guided_backprop", None), ("occlusion", None), ("rise", None)]
    candidates = Candidates()
    scored: dict[str, list] = {}
    rows = []
    architectures = {}
    for method, layer in runs:
        for task in TASKS.values():
            out = Path(args.out) / task.id / f"{method}@{layer or 'input'}"
            model = task.load_model(layer=layer)
            architectures[task.id] = type(model.model).__name__
            perturbation = registry.get(method).kind == "perturbation"
            items = (few if perturbation else data)[task.id]
            result = scored_run(task, model, items, out, method, args.workers, candidates)
            scored.setdefault(method, []).append(result)
            rows.append((method, layer or "input", task.id, result))
    table, figures = chosen(scored, rows)
    default = choose_default(
        {
            (method, run["layer"], architectures[run["task"]]): run[table[method]["boxes"]]
            for method, row in figures.items()
            if method in args.trusted
            for run in row["runs"]
        }
    )
    print_figures(table, figures)
    print(f"default: {default}")
    written = {
        "chosen_on": f"{args.root} {args.split}, first {args.limit} images "
        f"({len(few['captions'].files)} for occlusion and RISE)",
        "command": f"python scripts/choose_boxes.py --limit {args.limit} "
        f"--perturbation-limit {args.perturbation_limit}",
        "candidates": {
            "thresholds": list(candidates.thresholds),
            "seeds": list(candidates.seeds),
            "supports": list(candidates.supports),
        },
        "default": default,
        "trusted": list(args.trusted),
        "methods": table,
        "val": figures,
    }
    line = {"table": args.table, "default": default, "methods": table, "val": figures}
    return write_table(args.table, written, line, start)


def scored_run(
    task: Any,
    model: Any,
    items: Any,
    out: Path,
    method: str,
    workers: int,
    candidates: Candidates,
) -> Scored:
    """A dataset run of `method` over `items` into `out` (maps only: no faithfulness sweep),
    every candidate scored on its maps."""
    options = RunOptions(
        method=method, boxes="threshold", deletion_steps=0, road_fractions=(), workers=workers,
        progress=False,
    )  # fmt: skip
    task.explain(model, items, out, options)
    return score_run(out, task.id, items.files.__getitem__, candidates)


def chosen(scored: dict[str, list], rows: list[tuple]) -> tuple[dict, dict]:
    """Each method's chosen settings (the table's rows) and the val figures behind them, from
    its scored runs; `rows` lists (method, layer, task, scored run)."""
    table, figures = {}, {}
    for method, results in scored.items():
        settings, means = choose_settings(results)
        table[method] = settings.to_dict()
        figures[method] = {
            "mean_accuracy": means,
            "runs": [
                {
                    "layer": layer,
                    "task": task,
                    "count": result.count,
                    "threshold": result.accuracy(settings.threshold),
                    "refined": result.accuracy((settings.seed, settings.support)),
                    "refine_ms": round(1000 * result.refine_seconds, 2),
                }
                for m, layer, task, result in rows
                if m == method
            ],
        }
    return table, figures


def print_figures(table: dict, figures: dict) -> None:
    print(f"{'method':<17} {'layer':<17} {'task':<9} {'maps':>5} {'own box':>8} {'refined':>8}")
    for method, row in figures.items():
        for run in row["runs"]:
            print(
                f"{method:<17} {run['layer']:<17} {run['task']:<9} {run['count']:>5} "
                f"{run['threshold']:>8.3f} {run['refined']:>8.3f}"
            )
        print(f"  chosen: {table[method]}")


def choose_attention(args: argparse.Namespace) -> dict:
    """The attention methods' settings, chosen on `args.hf_captioner`'s caption words of the
    split, added to the table (the other rows and the default kept)."""
    start = time.perf_counter()
    task = TASKS[CAPTIONS.id]
    items = read_split(args.root, args.split, args.limit)[task.id]
    model = load_run_captioner(hf=args.hf_captioner)
    candidates, scored, rows = Candidates(), {}, []
    for method in CaptionStackExplainer.offered():
        out = Path(args.out) / task.id / f"{method}@{Path(args.hf_captioner).name}"
        result = scored_run(task, model, items, out, method, args.workers, candidates)
        scored[method] = [result]
        rows.append((method, "all attention layers", task.id, result))
    table, figures = chosen(scored, rows)
    print_figures(table, figures)
    written = json.loads(Path(args.table).read_text())
    written["methods"].update(table)
    written["val"].update(figures)
    written["attention_chosen_on"] = (
        f"{args.hf_captioner} caption words, {args.root} {args.split}, first {args.limit} images: "
        f"mmcam choose-boxes --hf-captioner {args.hf_captioner} --limit {args.limit}"
    )
    line = {"table": args.table, "methods": table, "val": figures}
    return write_table(args.table, written, line, start)


def write_table(path: str, written: dict, line: dict, start: float) -> dict:
    """Write the settings table to `path`; print `line` with the run's seconds since `start`
    as one JSON line, and return it."""
    Path(path).write_text(json.dumps(written, indent=1) + "\n")
    line["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line))
    return line
