"""The flags both training commands (`mmcam train-captioner`, `mmcam train-vqa`) share; each
adds its model's own."""

from __future__ import annotations

import argparse

from mmcam.cli.options import add_out, add_root, add_threads, command_parser
from mmcam.zoo.training import new_folder

__all__ = ["training_parser"]


def training_parser(
    description: str, name: str, writes: str, prog: str | None = None
) -> argparse.ArgumentParser:
    """The shared training flags; `name` names the default folder (a new out/NAME-DATE-TIME),
    `writes` the files the checkpoint folder holds, `prog` the command in the usage line."""
    p = command_parser(description, prog, argparse.RawTextHelpFormatter)
    add_root(p, "COCO 2014 layout files", flags=("--data", "--root"))
    add_out(
        p, new_folder(name), f"the best checkpoint: {writes}", shown=f"a new out/{name}-DATE-TIME"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the checkpoint in an existing --out (swapped in whole when the first "
        "better one is ready); without it an existing folder is refused",
    )
    p.add_argument(
        "--epochs", type=int, default=40, help="most training epochs (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument(
        "--lr", type=float, default=3e-3, help="peak learning rate (AdamW, warm-up then cosine)"
    )
    p.add_argument(
        "--min-count", type=int, default=1, help="vocabulary: keep words seen this often"
    )
    p.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[32, 64, 64],
        help="encoder conv widths; the last is the explained layer's channels",
    )
    p.add_argument(
        "--train-limit", type=int, default=None, help="use only the first N train images"
    )
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N val images")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="time budget in minutes: the learning rate anneals by then and training stops "
        "there (a run then depends on machine speed, not only on --seed)",
    )
    add_threads(p)
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and dropout")
    return p
