"""The `mmcam` command: one subcommand per task, each a module of this package with a
`build_parser(prog)` and a `main(argv, prog)`; the flags they share come from
`mmcam.cli.options`. A subcommand's module is imported only when it runs, so `mmcam --help`
is quick and a subcommand whose extra is missing fails alone, naming the extra."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mmcam.cli.exit_status import run_command

__all__ = ["COMMANDS", "main"]

# subcommand -> (its module under mmcam.cli, the line `mmcam --help` shows for it)
COMMANDS = {
    "explain-captions": ("explain_captions", "caption a COCO-format split and map every word"),
    "explain-vqa": ("explain_vqa", "answer a VQA v2 split and map each answer's evidence"),
    "sanity": ("sanity", "sanity checks: do the maps change when the weights are randomised?"),
    "choose-boxes": ("choose_boxes", "choose each method's box settings on val"),
    "compare-boxes": ("compare_boxes", "every method's boxes side by side on a split"),
    "train-captioner": ("train_captioner", "train the reference captioner (CNN + LSTM)"),
    "train-vqa": ("train_vqa", "train the reference VQA model"),
    "make-shapes": ("make_shapes", "write the synthetic shapes dataset (COCO / VQA v2 files)"),
    "demo": ("demo", "serve the Gradio demo (needs the demo extra)"),
}


def command_parser() -> argparse.ArgumentParser:
    """`mmcam`'s own parser: the subcommands, one line each (their flags are their own)."""
    parser = argparse.ArgumentParser(
        prog="mmcam",
        description="Grad-CAM and friends for image captioners and VQA models: what did the "
        "model look at?",
        epilog="`mmcam COMMAND --help` gives a command's flags and the files it writes.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `mmcam COMMAND ...` and return its exit status: 0 done, 2 a refusal or a bad
    command line (one `error:` line, no traceback; `--debug` shows it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        command_parser().parse_args(argv[:1])  # help (exit 0), or the choices (exit 2)
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"mmcam.cli.{COMMANDS[name][0]}")
    return run_command(lambda args: module.main(args, prog=f"mmcam {name}"), rest)
