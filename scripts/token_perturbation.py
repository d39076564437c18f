"""Chefer et al.'s perturbation test of a ViLT VQA model's maps: remove tokens in each map's order.

For every attention method (raw attention, rollout, attention Grad-CAM, relevance), Grad-CAM on
the patch tokens and a random order, each question's top answer is explained; the image's patch
tokens are then removed from the attention at the fractions 0, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9,
0.95, 1 (positive: most relevant first; negative: least relevant first) and the model's answer
scored by the standard VQA accuracy; the same for the question's tokens ([CLS] and [SEP] kept)
by the methods that give their relevance. Prints a Markdown table and ends with one JSON line
{"positive_auc": {METHOD: area}, "negative_auc": ..., "text_positive_auc": ...,
"text_negative_auc": ...}: lower positive and higher negative areas are more faithful.

    python scripts/token_perturbation.py --task vqa --hf models/vilt_vqa --split test --limit 100
"""

from __future__ import annotations

import argparse
import json

import torch

from mmcam.cli.options import add_limit, add_root, add_split, add_threads, command_parser
from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.images import image_path
from mmcam.explainers.hf import load_hf_vqa
from mmcam.runs.readout import number_text
from mmcam.studies.token_perturbation import vqa_token_curves


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The script's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    parser.add_argument(
        "--task",
        choices=["vqa"],
        default="vqa",
        help="vqa: a ViLT model's answers (captions: not yet)",
    )
    parser.add_argument("--hf", required=True, help="ViLT VQA folder or hub name (--hf FOLDER)")
    add_root(parser)
    add_split(parser, default="test")
    add_limit(parser, what="the questions of the first N images")
    parser.add_argument("--seed", type=int, default=0, help="orders tied relevance (default: 0)")
    add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the test on `argv`'s split; the figures it printed as its last line."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    adapter = load_hf_vqa(args.hf)
    paths = split_paths(args.root, args.split)
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    images = list(dict.fromkeys(item.image_id for item in items))[: args.limit]
    chosen = set(images)
    asked = [
        (item, image_path(args.root, args.split, item.image_id))
        for item in items
        if item.image_id in chosen
    ]
    figures = vqa_token_curves(adapter, asked, seed=args.seed).aucs()
    print(_table(figures, len(asked)))
    line = {"split": args.split, "images": len(images), "questions": len(asked), **figures}
    print(json.dumps(line))
    return line


def _table(figures: dict[str, dict[str, float]], questions: int) -> str:
    columns = ["positive_auc", "negative_auc", "text_positive_auc", "text_negative_auc"]
    lines = [
        f"{questions} questions; VQA accuracy's area under the removal curve",
        "| map | image positive ↓ | image negative ↑ | question positive ↓ | question negative ↑ |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method in figures["positive_auc"]:
        cells = [number_text(figures.get(c, {}).get(method)) for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
