"""Answer every VQA v2 question and show the evidence for each answer.

Writes to --out: vqa_results.json, the standard VQA accuracy when annotations are given
(official answer normalisation; min(#humans / 3, 1) averaged over the ten leave-one-out
subsets), a map per question's top answers (maps.npz) and a box for it
(boxes_results.json), and with an instances file the pointing game and localisation accuracy
of the answer maps of questions that name a category; metrics.json and report.txt; with
--save-figures, overlays with boxes. Resumable (run the same command again after an
interruption) and shardable:

    python scripts/explain_vqa.py                            # shapes val split, bundled model
    python scripts/explain_vqa.py --root /data/coco --split val --hf dandelin/vilt-b32-finetuned-vqa
    torchrun --nproc_per_node=4 scripts/explain_vqa.py --root /data/coco --split val

Ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcam.dataset_report import report_text, summary
from mmcam.dataset_runs import (
    add_run_arguments,
    explain_vqa,
    load_run_vqa,
    options_from_arguments,
    read_vqa_data,
    run_device,
)
from mmcam.datasets import read_json, split_paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data (official VQA v2 / COCO 2014 layout under --root)")
    data.add_argument(
        "--root",
        default="data/shapes",
        help="dataset root holding the VQA v2 files, <split>2014/ and annotations/ "
        "(default: %(default)s)",
    )
    data.add_argument("--split", default="val", help="split name, e.g. val (default: val)")
    data.add_argument(
        "--questions",
        help="VQA v2 questions file (default: ROOT/v2_OpenEnded_mscoco_SPLIT2014_questions.json)",
    )
    data.add_argument(
        "--annotations",
        help="VQA v2 annotations file for the accuracy (default: "
        "ROOT/v2_mscoco_SPLIT2014_annotations.json when it exists)",
    )
    data.add_argument("--no-annotations", action="store_true", help="answer only; no accuracy")
    data.add_argument("--images", help="image folder (default: ROOT/SPLIT2014)")
    data.add_argument(
        "--instances",
        help="COCO instances file for box metrics and image file names (default: "
        "ROOT/annotations/instances_SPLIT2014.json when it exists)",
    )
    data.add_argument(
        "--no-instances", action="store_true", help="no box metrics even if instances exist"
    )
    data.add_argument(
        "--categories",
        choices=["coco", "shapes"],
        default="coco",
        help="without an instances file: whose category words a question is scanned for "
        "(default: coco)",
    )
    data.add_argument("--limit", type=int, help="only the questions of the first N images")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        help="VQA model folder (config.json, vocab.json, answers.json, model.pt) "
        "(default: models/vqa)",
    )
    model.add_argument(
        "--hf",
        metavar="NAME_OR_PATH",
        help="a ViLT or BLIP VQA model from the Hugging Face hub or a local folder instead",
    )
    model.add_argument(
        "--answers",
        help="JSON list of candidate answers, needed by BLIP VQA (--hf) which scores a list",
    )
    model.add_argument(
        "--top-k", type=int, default=3, help="answers mapped per question (default: 3)"
    )
    parser.add_argument(
        "--out", default="out/explain_vqa", help="output folder (default: %(default)s)"
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
    data = read_vqa_data(
        args.questions or paths["questions"],
        args.images or paths["images"],
        _default(args.annotations, paths["vqa_annotations"], args.no_annotations),
        _default(args.instances, paths["instances"], args.no_instances),
        categories=args.categories,
        limit=args.limit,
    )
    answers = read_json(args.answers) if args.answers else None
    model = load_run_vqa(
        args.checkpoint, hf=args.hf, answers=answers, device=run_device(args.device)
    )
    result = explain_vqa(model, data, args.out, options_from_arguments(args))
    if result is None:  # a torchrun rank other than 0: rank 0 merges and reports
        return None
    print(report_text(result.metrics), end="")
    print(f"outputs in {args.out}")
    line = {**summary(result.metrics), **result.timing}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
