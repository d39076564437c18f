"""Does each method's map beat the baselines on faithfulness?

For each method (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM at the bundled models' own layer;
the default method at the layer chosen for it; guided backprop; occlusion; RISE) and both
tasks, a dataset run over --split measures deletion and insertion AUC (tied pixels in random
orders) and ROAD most and least relevant first of the whole caption's map (captions) or the
top answer's map (VQA), beside a random map and a centre Gaussian on the same items (the
baselines do not depend on the method: they are measured once per set of items). The
perturbation methods cost a forward pass per perturbed copy, so they run on the first
--perturbation-limit images only, with their own baselines:

    python scripts/make_shapes.py --out data/shapes --train 0 --val 500 --test 500
    python scripts/compare_faithfulness.py --split test --limit 25

Prints a Markdown table per task and ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from mmcam.boxes.settings import default_method
from mmcam.cli.options import add_limit, add_out, add_root, add_split, add_workers
from mmcam.methods import registry
from mmcam.runs.command_line import fraction_list
from mmcam.runs.faithfulness import FAITHFULNESS_KEYS
from mmcam.runs.inputs import read_split
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import number_text
from mmcam.runs.tasks import TASKS
from mmcam.studies.comparisons import compared_methods, compared_model

LOWER_IS_BETTER = {"deletion_auc": True, "insertion_auc": False, "road_morf": True,
                   "road_lerf": False}  # fmt: skip
SHORT = {"deletion_auc": "del", "insertion_auc": "ins", "road_morf": "MoRF", "road_lerf": "LeRF"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_root(parser)
    add_split(parser, default="test", help="the split (default: %(default)s)")
    add_limit(parser, default=25)
    parser.add_argument(
        "--perturbation-limit", type=int, default=6,
        help="first N images for occlusion and RISE (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--questions-per-image", type=int, default=1,
        help="VQA: the first N questions of each image (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--deletion-steps", type=int, default=10, help="(default: %(default)s)")
    parser.add_argument("--tie-orders", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument(
        "--road-fractions", type=fraction_list, default=(0.2, 0.5, 0.8),
        help="ROAD's shares of removed pixels (default: 0.2,0.5,0.8)",
    )  # fmt: skip
    parser.add_argument("--masks", type=int, default=500, help="RISE masks (default: 500)")
    add_out(parser, "out/compare_faithfulness", "the dataset runs")
    add_workers(parser, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    default = default_method()
    small = min(args.perturbation_limit, args.limit)
    runs = [
        (method, layer, small if registry.get(method).kind == "perturbation" else args.limit)
        for method, layer in compared_methods()
    ]
    data = {limit: read_split(args.root, args.split, limit) for limit in {args.limit, small}}
    for split in data.values():
        questions = split["vqa"].questions
        kept = {image: items[: args.questions_per_image] for image, items in questions.items()}
        split["vqa"] = dataclasses.replace(split["vqa"], questions=kept)
    measured = {
        "deletion_steps": args.deletion_steps, "tie_orders": args.tie_orders,
        "road_fractions": args.road_fractions, "workers": args.workers, "progress": False,
    }  # fmt: skip
    figures: dict[str, list[dict]] = {task: [] for task in TASKS}
    for task in TASKS.values():
        baselines: dict[int, dict] = {}
        for method, layer, limit in runs:
            model = compared_model(task.id, method, layer)
            if model is None:
                continue  # no layer was chosen for this model: the row above is the default
            first = limit not in baselines  # the baselines, once per set of items
            options = RunOptions(
                method=method,
                method_options=_options(method, args.masks),
                baselines=first,
                **measured,
            )
            where = model.layer if registry.get(method).kind == "gradient" or layer else "input"
            name = f"{method}@{where}_{limit}_{args.questions_per_image}q"
            metrics = task.explain(model, data[limit][task.id], Path(args.out) / task.id / name,
                                   options).metrics  # fmt: skip
            if first:
                baselines[limit] = metrics
                for kind in ("random", "center"):
                    figures[task.id].append(_row(metrics, kind, kind, "-", limit))
            figures[task.id].append(
                _row(metrics, "map", method, where, limit, baselines[limit], layer == "chosen")
            )
    for task, rows in figures.items():
        print(f"\n{task} ({args.root} {args.split})")
        print(_table(rows))
    line = {"split": args.split, "limit": args.limit, "perturbation_limit": small,
            "questions_per_image": args.questions_per_image, **measured, "default": default.method,
            **figures, "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    line.pop("workers"), line.pop("progress")
    print(json.dumps(line))
    return line


def _options(method: str, masks: int) -> dict:
    """`--masks` for the methods that take a number of masks (RISE)."""
    return {"n_masks": masks} if "n_masks" in registry.get(method).option_fields() else {}


def _row(metrics: dict, key: str, method: str, layer: str, limit: int,
         baselines: dict | None = None, default: bool = False) -> dict:  # fmt: skip
    """One table row: `key`'s figures ("map", "random", "center") of a run, and for a map the
    measures on which it beats both baselines of the same items."""
    row = {"method": method, "layer": layer, "images": limit, "items": None, "default": default,
           "support": metrics["map_support"] if key == "map" else 1.0}  # fmt: skip
    for measure in FAITHFULNESS_KEYS:
        found = metrics.get(measure) or {}
        row[measure] = found.get(key)
        row["items"] = found.get("count", row["items"])
    if baselines is not None:
        row["beats_both"] = [
            SHORT[m] for m in FAITHFULNESS_KEYS
            if row[m] is not None and all(
                (row[m] < baselines[m][b]) if LOWER_IS_BETTER[m] else (row[m] > baselines[m][b])
                for b in ("random", "center")
            )
        ]  # fmt: skip
    return row


def _table(rows: list[dict]) -> str:
    lines = [
        "| map | layer | images | items | support | deletion AUC ↓ | insertion AUC ↑ "
        "| ROAD MoRF ↓ | ROAD LeRF ↑ | beats both baselines on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        name = f"**{row['method']}** (default)" if row["default"] else row["method"]
        if "beats_both" not in row:
            name = {"random": "*random map*", "center": "*centre Gaussian*"}[row["method"]]
        beats = ", ".join(row.get("beats_both", [])) or ("none" if "beats_both" in row else "")
        lines.append(
            f"| {name} | `{row['layer']}` | {row['images']} | {row['items']} | "
            f"{number_text(row['support'])} | "
            + " | ".join(number_text(row[m]) for m in FAITHFULNESS_KEYS)
            + f" | {beats} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
