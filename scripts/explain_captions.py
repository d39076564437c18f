"""Caption every image of a COCO captions file and show where each word looked.

Writes to --out: captions_results.json, BLEU against the references, per-word maps
(maps.npz), a box for each word that names a category (boxes_results.json, COCO detection
results), and with an instances file the pointing game and localisation accuracy per
category; metrics.json and report.txt; with --save-figures, overlays with boxes. Resumable
(run the same command again after an interruption) and shardable:

    python scripts/explain_captions.py                       # shapes val split, bundled model
    python scripts/explain_captions.py --root /data/coco --split val --out out/coco_captions
    torchrun --nproc_per_node=4 scripts/explain_captions.py --root /data/coco --split val

Ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcam.dataset_report import report_text, summary
from mmcam.dataset_runs import (
    add_run_arguments,
    explain_captions,
    load_run_captioner,
    options_from_arguments,
    read_caption_data,
    run_device,
)
from mmcam.datasets import split_paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data (official COCO 2014 layout under --root)")
    data.add_argument(
        "--root",
        default="data/shapes",
        help="dataset root holding <split>2014/ and annotations/ (default: %(default)s)",
    )
    data.add_argument("--split", default="val", help="split name, e.g. val (default: val)")
    data.add_argument(
        "--captions", help="COCO captions file (default: ROOT/annotations/captions_SPLIT2014.json)"
    )
    data.add_argument("--images", help="image folder (default: ROOT/SPLIT2014)")
    data.add_argument(
        "--instances",
        help="COCO instances file for box metrics (default: "
        "ROOT/annotations/instances_SPLIT2014.json when it exists)",
    )
    data.add_argument(
        "--no-instances", action="store_true", help="no box metrics even if instances exist"
    )
    data.add_argument(
        "--categories",
        choices=["coco", "shapes"],
        default="coco",
        help="without an instances file: whose category words get boxes (default: coco)",
    )
    data.add_argument("--limit", type=int, help="only the first N images")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        help="captioner folder (config.json, vocab.json, model.pt) (default: models/captioner)",
    )
    model.add_argument(
        "--hf",
        metavar="NAME_OR_PATH",
        help="a BLIP captioner from the Hugging Face hub or a local folder instead",
    )
    model.add_argument(
        "--max-length", type=int, default=20, help="longest caption in words (default: 20)"
    )
    model.add_argument("--beam-size", type=int, default=1, help="1: greedy (default: 1)")
    parser.add_argument(
        "--out", default="out/explain_captions", help="output folder (default: %(default)s)"
    )
    add_run_arguments(parser)
    return parser


def _default(given: str | None, default: Path, off: bool) -> str | Path | None:
    """An explicit file, else the default when it exists; None when switched off."""
    if off:
        return None
    if given is not None:
        return given
    return default if default.is_file() else None


def main(argv: list[str] | None = None) -> dict | None:
    args = build_parser().parse_args(argv)
    paths = split_paths(args.root, args.split)
    data = read_caption_data(
        args.captions or paths["captions"],
        args.images or paths["images"],
        _default(args.instances, paths["instances"], args.no_instances),
        categories=args.categories,
        limit=args.limit,
    )
    model = load_run_captioner(args.checkpoint, hf=args.hf, device=run_device(args.device))
    result = explain_captions(model, data, args.out, options_from_arguments(args))
    if result is None:  # a torchrun rank other than 0: rank 0 merges and reports
        return None
    print(report_text(result.metrics), end="")
    print(f"outputs in {args.out}")
    line = {**summary(result.metrics), **result.timing}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
