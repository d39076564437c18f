"""Write the synthetic shapes dataset in the official COCO 2014 / VQA v2 files and layout.

python scripts/make_shapes.py --out data/shapes --train 8000 --val 500 --test 500 --seed 0

Three splits: train (fit the models), val (choose checkpoints, methods, layers, thresholds,
blur), test (report). Scene i of a split depends only on (seed, split, i), so adding a split
or changing another's size leaves each scene as it was.
"""

from __future__ import annotations

import argparse
import json
import time

from mmcam.data.shapes import write_samples, write_shapes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--out", default="data/shapes", help="dataset root to write (default: %(default)s)"
    )
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    main()
