"""Every method's boxes side by side: what the maps alone give and what the image adds.

For each method (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM at the bundled models' own layer;
the default method at the layer chosen for it; LayerCAM fused over --fusion; guided backprop;
occlusion; RISE) and both tasks, a dataset run over --split explains every caption shape word
and every question naming a shape, with the method's box settings (models/box_settings.json),
and reports for the map's own box and for the refined box (map + image) the localisation
accuracy (IoU >= 0.5), CorLoc and AP50 (pycocotools). The perturbation methods cost a forward
pass per perturbed copy, so they run on the first --perturbation-limit images only:

    mmcam make-shapes --out data/shapes --train 0 --val 500 --test 500
    mmcam compare-boxes --split test

Writes each method's dataset run (boxes_results.json, metrics.json, report.txt, ...) to
OUT/<task>/<method>@<layer>/, prints a Markdown table per task and ends with one JSON line of
the figures. `python scripts/compare_boxes.py` takes the same flags.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmcam.boxes.settings import box_settings, default_method
from mmcam.cli.options import add_limit, add_out, add_root, add_split, add_workers, command_parser
from mmcam.methods import registry
from mmcam.runs.inputs import read_split
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import number_text, summary
from mmcam.runs.tasks import TASKS
from mmcam.studies.comparisons import compared_methods, compared_model

FIGURES = (
    "loc_accuracy_threshold", "loc_accuracy_refined", "corloc_threshold", "corloc_refined",
    "coco_ap50_threshold", "coco_ap50_refined", "pointing",
)  # fmt: skip


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    add_root(parser)
    add_split(parser, default="test", help="the split (default: %(default)s)")
    add_limit(parser)
    parser.add_argument(
        "--perturbation-limit",
        type=int,
        default=20,
        help="first N images for occlusion and RISE (default: %(default)s)",
    )
    parser.add_argument(
        "--fusion",
        default="encoder.stem,encoder.body,encoder.features",
        help="layers whose LayerCAM maps are fused (default: the bundled models' conv stages)",
    )
    add_out(parser, "out/compare_boxes", "the dataset runs, OUT/<task>/<method>@<layer>/")
    add_workers(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    """Run and score every method on `argv`'s split; the JSON line it printed."""
    args = build_parser(prog).parse_args(argv)
    start = time.perf_counter()
    default = default_method()
    perturbation_limit = min(args.perturbation_limit, args.limit or args.perturbation_limit)
    figures: dict[str, list[dict]] = {task: [] for task in TASKS}
    data = {
        limit: read_split(args.root, args.split, limit)
        for limit in {args.limit, perturbation_limit}
    }
    for task in TASKS.values():
        for method, layer in compared_methods(args.fusion):
            model = compared_model(task.id, method, layer)
            if model is None:
                continue  # no layer was chosen for this model: the row above is the default
            kind = registry.get(method).kind
            limit = perturbation_limit if kind == "perturbation" else args.limit
            options = RunOptions.with_boxes(
                box_settings(method), method=method, deletion_steps=0, road_fractions=(),
                workers=args.workers, progress=False,
            )  # fmt: skip
            where = model.layer if kind == "gradient" else "input"
            out = Path(args.out) / task.id / f"{method}@{where}"
            metrics = task.explain(model, data[limit][task.id], out, options).metrics
            found = summary(metrics)
            figures[task.id].append(
                {"method": method, "layer": where, "images": metrics["images"],
                 "maps": metrics["loc_accuracy"]["count"],
                 **{name: found[name] for name in FIGURES},
                 "default": layer == "chosen"}
            )  # fmt: skip
    for task, rows in figures.items():
        print(f"\n{task} ({args.root} {args.split})")
        print(_table(rows))
    line = {"split": args.split, "default": default.method, **figures,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    print(json.dumps(line))
    return line


def _table(rows: list[dict]) -> str:
    lines = [
        "| method | layer | images | maps | pointing | own box: loc acc / CorLoc / AP50 "
        "| refined: loc acc / CorLoc / AP50 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        name = f"**{row['method']}** (default)" if row["default"] else row["method"]
        own, refined = (
            " / ".join(
                number_text(row[f"{name}_{kind}"])
                for name in ("loc_accuracy", "corloc", "coco_ap50")
            )
            for kind in ("threshold", "refined")
        )
        lines.append(
            f"| {name} | `{row['layer']}` | {row['images']} | {row['maps']} | "
            f"{number_text(row['pointing'])} | {own} | {refined} |"
        )
    return "\n".join(lines)
