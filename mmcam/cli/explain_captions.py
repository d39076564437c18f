"""Caption every image of a COCO captions file and show where each word looked.

Writes to --out: captions_results.json, BLEU against the references, per-word maps
(maps.npz), a box for each word that names a category (boxes_results.json, COCO detection
results), and with an instances file the pointing game and localisation accuracy per
category; metrics.json and report.txt; with --save-figures, overlays with boxes. Resumable
(run the same command again after an interruption) and shardable:

    mmcam explain-captions                       # shapes val split, bundled model
    mmcam explain-captions --root /data/coco --split val --out out/coco_captions
    torchrun --nproc_per_node=4 -m mmcam.cli explain-captions --root /data/coco --split val

Ends with one JSON line of the headline figures. `python scripts/explain_captions.py` takes the
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
from mmcam.runs.captions import explain_captions
from mmcam.runs.command_line import chosen_method, optional_file, options_from_arguments, print_run
from mmcam.runs.inputs import read_caption_data
from mmcam.runs.models import load_run_captioner, run_device


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    data = add_dataset_arguments(
        parser,
        layout="official COCO 2014 layout",
        root_holds="<split>2014/ and annotations/",
        instances_for="box metrics",
        words="whose category words get boxes",
        limit="the first N images",
    )
    data.add_argument(
        "--captions", help="COCO captions file (default: ROOT/annotations/captions_SPLIT2014.json)"
    )
    model = add_model_arguments(
        parser,
        checkpoint="captioner folder (config.json, vocab.json, model.pt) "
        "(default: models/captioner)",
        hf="a BLIP captioner",
        out="out/explain_captions",
        writes="captions_results.json, boxes_results.json, maps.npz, metrics.json, report.txt",
    )
    model.add_argument(
        "--max-length", type=int, default=20, help="longest caption in words (default: 20)"
    )
    model.add_argument("--beam-size", type=int, default=1, help="1: greedy (default: 1)")
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> dict | None:
    """Run the command on `argv`; the JSON line it printed (None on torchrun ranks but 0)."""
    args = build_parser(prog).parse_args(argv)
    paths = split_paths(args.root, args.split)
    data = read_caption_data(
        args.captions or paths["captions"],
        args.images or paths["images"],
        optional_file(args.instances, paths["instances"], args.no_instances),
        categories=args.categories,
        limit=args.limit,
    )
    device = run_device(args.device)
    model = load_run_captioner(args.checkpoint, hf=args.hf, device=device, layer=args.layer)
    model = chosen_method(args, model)
    result = explain_captions(model, data, args.out, options_from_arguments(args))
    return print_run(result, args.out)
