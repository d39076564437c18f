"""Chefer et al.'s perturbation test of a transformer's maps: remove tokens in each map's order.

For every attention method (raw attention, rollout, attention Grad-CAM, relevance), Grad-CAM on
the patch tokens and a random order, the image's patch tokens are removed from the attention at
the fractions 0, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 1 of them (positive: most relevant
first; negative: least relevant first) and the model is scored at each step:

- --task vqa (ViLT): each question's top answer, by the standard VQA accuracy of the model's
  answer; the same for the question's tokens ([CLS] and [SEP] kept) by the methods that give
  their relevance (text_* keys);
- --task captions (BLIP): every word of the model's caption, by its teacher-forced
  log-probability (tokens removed from the sequence before the vision encoder).

Prints a Markdown table and ends with one JSON line {"positive_auc": {METHOD: area},
"negative_auc": ..., "text_positive_auc": ..., "text_negative_auc": ...}: lower positive and
higher negative areas are more faithful.

    python scripts/token_perturbation.py --task captions --hf models/blip_captioner --limit 50
    python scripts/token_perturbation.py --task vqa --hf VILT_FOLDER --split test --limit 100
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import NamedTuple

import torch

from mmcam.cli.options import (
    add_limit,
    add_root,
    add_split,
    add_threads,
    add_transformer,
    command_parser,
)
from mmcam.data.annotations import read_coco_captions, read_vqa, split_paths
from mmcam.data.images import image_path
from mmcam.explainers.hf import load_hf_captioner, load_hf_vqa
from mmcam.runs.captions import CAPTIONS
from mmcam.runs.readout import number_text
from mmcam.runs.vqa import VQA
from mmcam.studies.token_perturbation import TokenCurves, caption_token_curves, vqa_token_curves


class TokenStudy(NamedTuple):
    """The test for one task: the task's id, what it scores, and how it runs on a split."""

    task: str
    score: str
    run: Callable[[argparse.Namespace, dict], tuple[TokenCurves, dict[str, int]]]


def _captions(args: argparse.Namespace, paths: dict) -> tuple[TokenCurves, dict[str, int]]:
    data = read_coco_captions(paths["captions"])
    ids = list(data.images)[: args.limit]
    files = [image_path(args.root, args.split, i, data.images[i].file_name) for i in ids]
    curves = caption_token_curves(load_hf_captioner(args.hf), files, seed=args.seed)
    return curves, {"images": len(ids), "words": curves.count}


def _vqa(args: argparse.Namespace, paths: dict) -> tuple[TokenCurves, dict[str, int]]:
    questions = read_vqa(paths["questions"], paths["vqa_annotations"])
    ids = list(dict.fromkeys(item.image_id for item in questions))[: args.limit]
    chosen = set(ids)
    asked = [
        (item, image_path(args.root, args.split, item.image_id))
        for item in questions
        if item.image_id in chosen
    ]
    curves = vqa_token_curves(load_hf_vqa(args.hf), asked, seed=args.seed)
    return curves, {"images": len(ids), "questions": curves.count}


STUDIES = {
    study.task: study
    for study in (
        TokenStudy(VQA.id, "VQA accuracy", _vqa),
        TokenStudy(CAPTIONS.id, "word log-probability", _captions),
    )
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The script's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    add_transformer(parser, STUDIES, default=VQA.id)
    add_root(parser)
    add_split(parser, default="test")
    add_limit(parser, what="the first N images (VQA: their questions)")
    parser.add_argument("--seed", type=int, default=0, help="orders tied relevance (default: 0)")
    add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the test on `argv`'s split; the figures it printed as its last line."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    study = STUDIES[args.task]
    curves, items = study.run(args, split_paths(args.root, args.split))
    figures = curves.aucs()
    print(_table(figures, items, study.score))
    line = {"split": args.split, "task": args.task, **items, **figures}
    print(json.dumps(line))
    return line


def _table(figures: dict[str, dict[str, float]], items: dict[str, int], score: str) -> str:
    columns = ["positive_auc", "negative_auc", "text_positive_auc", "text_negative_auc"]
    counted = ", ".join(f"{n} {what}" for what, n in items.items())
    lines = [
        f"{counted}; the {score}'s area under the removal curve",
        "| map | image positive ↓ | image negative ↑ | question positive ↓ | question negative ↑ |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method in figures["positive_auc"]:
        cells = [number_text(figures.get(c, {}).get(method)) for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
