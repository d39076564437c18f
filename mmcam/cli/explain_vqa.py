"""Answer every VQA v2 question and show the evidence for each answer.

Writes to --out: vqa_results.json, the standard VQA accuracy when annotations are given
(official answer normalisation; min(#humans / 3, 1) averaged over the ten leave-one-out
subsets), a map per question's top answers (maps.npz) and a box for it
(boxes_results.json), and with an instances file the pointing game and localisation accuracy
of the answer maps of questions that name a category; metrics.json and report.txt; with
--save-figures, overlays with boxes. Resumable (run the same command again after an
interruption) and shardable:

    mmcam explain-vqa                            # shapes val split, bundled model
    mmcam explain-vqa --root /data/coco --split val --hf dandelin/vilt-b32-finetuned-vqa
    torchrun --nproc_per_node=4 -m mmcam.cli explain-vqa --root /data/coco --split val

Ends with one JSON line of the headline figures. `python scripts/explain_vqa.py` takes the
same flags.
"""

from __future__ import annotations

import argparse

from mmcam.cli.dataset_options import (
    add_dataset_arguments,
    add_model_arguments,
    add_run_arguments,
)
from mmcam.cli.options import command_parser
from mmcam.data.annotations import split_paths
from mmcam.data.files import read_json
from mmcam.runs.command_line import chosen_method, optional_file, options_from_arguments, print_run
from mmcam.runs.inputs import read_vqa_data
from mmcam.runs.models import load_run_vqa, run_device
from mmcam.runs.vqa import explain_vqa


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    data = add_dataset_arguments(
        parser,
        layout="official VQA v2 / COCO 2014 layout",
        root_holds="the VQA v2 files, <split>2014/ and annotations/",
        instances_for="box metrics and image file names",
        words="whose category words a question is scanned for",
        limit="the questions of the first N images",
    )
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
    model = add_model_arguments(
        parser,
        checkpoint="VQA model folder (config.json, vocab.json, answers.json, model.pt) "
        "(default: models/vqa)",
        hf="a ViLT or BLIP VQA model",
        out="out/explain_vqa",
        writes="vqa_results.json, boxes_results.json, maps.npz, metrics.json, report.txt",
    )
    model.add_argument(
        "--answers",
        help="JSON list of candidate answers, needed by BLIP VQA (--hf) which scores a list",
    )
    model.add_argument(
        "--top-k", type=int, default=3, help="answers mapped per question (default: 3)"
    )
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> dict | None:
    """Run the command on `argv`; the JSON line it printed (None on torchrun ranks but 0)."""
    args = build_parser(prog).parse_args(argv)
    paths = split_paths(args.root, args.split)
    data = read_vqa_data(
        args.questions or paths["questions"],
        args.images or paths["images"],
        optional_file(args.annotations, paths["vqa_annotations"], args.no_annotations),
        optional_file(args.instances, paths["instances"], args.no_instances),
        categories=args.categories,
        limit=args.limit,
    )
    answers = read_json(args.answers) if args.answers else None
    device = run_device(args.device)
    model = load_run_vqa(
        args.checkpoint, hf=args.hf, answers=answers, device=device, layer=args.layer
    )
    model = chosen_method(args, model)
    result = explain_vqa(model, data, args.out, options_from_arguments(args))
    return print_run(result, args.out)
