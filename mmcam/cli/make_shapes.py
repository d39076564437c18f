"""Write the synthetic shapes dataset in the official COCO 2014 / VQA v2 files and layout.

    mmcam make-shapes --out data/shapes --train 8000 --val 500 --test 500 --seed 0

Writes to --out, per split: SPLIT2014/ (the PNG scenes), annotations/captions_SPLIT2014.json and
annotations/instances_SPLIT2014.json (COCO), v2_OpenEnded_mscoco_SPLIT2014_questions.json and
v2_mscoco_SPLIT2014_annotations.json (VQA v2); with --samples, the sample scenes and
samples.json. `python scripts/make_shapes.py` takes the same flags.

Three splits: train (fit the models), val (choose checkpoints, methods, layers, thresholds,
blur), test (report). Scene i of a split depends only on (seed, split, i), so adding a split
or changing another's size leaves each scene as it was.
"""

from __future__ import annotations

import argparse
import json
import time

from mmcam.cli.options import add_out, command_parser
from mmcam.data.shapes import write_samples, write_shapes


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog, argparse.RawTextHelpFormatter)
    add_out(parser, "data/shapes", "the dataset root (COCO 2014 / VQA v2 files and images)")
    parser.add_argument(
        "--train", type=int, default=8000, help="train2014 images (default: %(default)s)"
    )
    parser.add_argument(
        "--val", type=int, default=500, help="val2014 images (default: %(default)s)"
    )
    parser.add_argument(
        "--test", type=int, default=500, help="test2014 images (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="scene i of a split depends only on (seed, split, i)"
    )
    parser.add_argument(
        "--samples",
        default=None,
        help="also write 4 held-out sample scenes (PNG + samples.json) to this folder",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Write the splits `argv` asks for and print one JSON line."""
    args = build_parser(prog).parse_args(argv)
    start = time.perf_counter()
    for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
        if count:
            write_shapes(args.out, split, count, args.seed, progress=True)
    if args.samples:
        print(f"samples: {write_samples(args.samples, args.seed)}")
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.train} train, {args.val} val and {args.test} test scenes to {args.out} "
        f"in {seconds:.1f} s"
    )
    print(
        json.dumps(
            {
                "out": args.out,
                "train": args.train,
                "val": args.val,
                "test": args.test,
                "seed": args.seed,
                "seconds": round(seconds, 2),
            }
        )
    )
