"""Choose each method's box settings on the val split and write them to models/box_settings.json.

For every method (CAM methods at the bundled models' encoder.features and encoder.stem, LayerCAM
fused over encoder.stem, encoder.body and encoder.features, guided backprop in pixel space) and
both tasks (caption shape words, VQA questions naming a shape), a dataset run maps the first
--limit val images; then the map's own box at thresholds 0.10-0.50 and the refined box (map +
image) at seeds x supports are scored (IoU >= 0.5). Each method gets the candidate with the best
accuracy averaged over its tasks and layers:

    python scripts/make_shapes.py --out data/shapes --train 0 --val 500
    python scripts/choose_boxes.py --limit 50

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmcam.data.annotations import split_paths
from mmcam.evaluation.box_settings import BOX_SETTINGS
from mmcam.runs.box_choice import Candidates, choose_settings, score_run
from mmcam.runs.captions import explain_captions
from mmcam.runs.inputs import read_caption_data, read_vqa_data
from mmcam.runs.models import load_run_captioner, load_run_vqa
from mmcam.runs.options import RunOptions
from mmcam.runs.vqa import explain_vqa

CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "layercam")
LAYERS = ("encoder.features", "encoder.stem")
FUSION = "encoder.stem,encoder.body,encoder.features"  # LayerCAM's fusion of every conv stage


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="data/shapes", help="dataset root (default: %(default)s)")
    parser.add_argument("--split", default="val", help="the split to choose on (default: val)")
    parser.add_argument("--limit", type=int, default=50, help="first N images (default: 50)")
    parser.add_argument("--out", default="out/choose_boxes", help="runs go here")
    parser.add_argument("--table", default=str(BOX_SETTINGS), help="where the table is written")
    parser.add_argument("--workers", type=int, default=2, help="image-reading processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = split_paths(args.root, args.split)
    data = {
        "captions": read_caption_data(
            paths["captions"], paths["images"], paths["instances"], limit=args.limit
        ),
        "vqa": read_vqa_data(
            paths["questions"], paths["images"], paths["vqa_annotations"], paths["instances"],
            limit=args.limit,
        ),
    }  # fmt: skip
    explain = {"captions": explain_captions, "vqa": explain_vqa}
    load = {"captions": load_run_captioner, "vqa": load_run_vqa}
    runs = [(m, layer) for m in CAM_METHODS for layer in LAYERS]
    runs += [("layercam", FUSION), ("guided_backprop", None)]
    candidates = Candidates()
    scored: dict[str, list] = {}
    rows = []
    for method, layer in runs:
        for task in ("captions", "vqa"):
            out = Path(args.out) / task / f"{method}@{layer or 'input'}"
            model = load[task](layer=layer)
            options = RunOptions(
                method=method, boxes="threshold", deletion_steps=0, workers=args.workers,
                progress=False,
            )  # fmt: skip
            explain[task](model, data[task], out, options)
            result = score_run(out, task, data[task].files.__getitem__, candidates)
            scored.setdefault(method, []).append(result)
            rows.append((method, layer or "input", task, result))
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
    print(f"{'method':<16} {'layer':<17} {'task':<9} {'maps':>5} {'own box':>8} {'refined':>8}")
    for method, row in figures.items():
        for run in row["runs"]:
            print(
                f"{method:<16} {run['layer']:<17} {run['task']:<9} {run['count']:>5} "
                f"{run['threshold']:>8.3f} {run['refined']:>8.3f}"
            )
        print(f"  chosen: {table[method]}")
    written = {
        "chosen_on": f"{args.root} {args.split}, first {args.limit} images",
        "command": f"python scripts/choose_boxes.py --limit {args.limit}",
        "candidates": {
            "thresholds": list(candidates.thresholds),
            "seeds": list(candidates.seeds),
            "supports": list(candidates.supports),
        },
        "methods": table,
        "val": figures,
    }
    Path(args.table).write_text(json.dumps(written, indent=1) + "\n")
    line = {"table": args.table, "methods": table, "val": figures,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
