"""The mmcam demo: caption an image and see where each word came from; ask a question and see
the evidence for (and against) the answer.

    mmcam demo                                # http://127.0.0.1:7860, the bundled checkpoints
    mmcam demo --port 8000 --host ADDRESS     # opt-in: serve on a network address

Writes only what the page offers for download (each heat map as PNG, the maps as .npz), one
folder per request in a temporary folder removed when the demo stops. Needs the `demo` extra
(gradio). `python demos/app.py` takes the same flags.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from mmcam.cli.options import add_threads, command_parser
from mmcam.core.bundled import BUNDLED
from mmcam.core.extras import require

__all__ = ["build_parser", "main"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: local)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MMCAM_DEMO_PORT", 7860)),
        help="port to serve on; 0 picks a free one (default: %(default)s, or MMCAM_DEMO_PORT)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=BUNDLED,
        help="folder holding captioner/ and vqa/ checkpoints (default: the bundled ones)",
    )
    parser.add_argument(
        "--hf-captioner",
        metavar="NAME_OR_PATH",
        help="a BLIP captioning model (Hugging Face hub name or local folder) instead of ours",
    )
    parser.add_argument(
        "--hf-vqa",
        metavar="NAME_OR_PATH",
        help="a ViLT or BLIP VQA model (hub name or local folder) instead of ours",
    )
    parser.add_argument(
        "--answers",
        type=Path,
        help="JSON list of candidate answers, needed by BLIP VQA (--hf-vqa), which scores a list",
    )
    add_threads(parser, why=" (the models are small: 1 is fastest)")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Load the models `argv` names and serve the page until interrupted."""
    args = build_parser(prog).parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
    require("gradio", "demo", "The demo")  # named first: the page needs more than gradio
    from mmcam.app import Demo
    from mmcam.app.page import build, launch  # needs the demo extra: imported when serving

    torch.set_num_threads(args.threads)
    answers = json.loads(args.answers.read_text()) if args.answers else None
    demo = Demo.load(
        args.models, hf_captioner=args.hf_captioner, hf_vqa=args.hf_vqa, hf_answers=answers
    )
    launch(build(demo), args.host, args.port)
