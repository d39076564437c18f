"""The randomisation check of a transformer's attention methods (Adebayo et al. 2018).

The maps of raw attention, rollout, attention Grad-CAM and relevance from the trained model and
from copies whose layers are re-initialised, from the top down (cascading) and one at a time
(independent), for every word of a BLIP captioner's captions (--task captions) or the top 3
answers of the first question of each image by a ViLT model (--task vqa): the mean signed
Spearman correlation after the top layer, after all layers, and the highest over the one-layer
randomisations. Low is what a map that reads the model should give. Prints a table and ends with
one JSON line {"images", "task", "targets", "top_layer", "skipped", "after_top": {METHOD: rho},
"after_all": {...}, "independent": {...}, "independent_layer": {METHOD: layer}}.

    python scripts/attention_sanity.py --hf models/blip_captioner --split val --limit 4
    python scripts/attention_sanity.py --task vqa --hf models/vilt_vqa --split val --limit 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
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
from mmcam.data.images import image_path, load_image
from mmcam.explainers.hf import load_hf_captioner, load_hf_vqa
from mmcam.runs.captions import CAPTIONS
from mmcam.runs.readout import number_text
from mmcam.runs.vqa import VQA
from mmcam.studies.attention_sanity import (
    AttentionSanity,
    caption_attention_sanity,
    vqa_attention_sanity,
)


class SanityStudy(NamedTuple):
    """The check for one task: the task's id, what its targets are, and how it runs."""

    task: str
    targets: str
    run: Callable[[argparse.Namespace, dict], tuple[AttentionSanity, int]]


def _captions(args: argparse.Namespace, paths: dict) -> tuple[AttentionSanity, int]:
    captioner = load_hf_captioner(args.hf)
    data = read_coco_captions(paths["captions"])
    ids = list(data.images)[: args.limit]
    files = [image_path(args.root, args.split, i, data.images[i].file_name) for i in ids]
    images = torch.cat([captioner.preprocess(load_image(Path(f))).pixel_values for f in files])
    return caption_attention_sanity(captioner, images, seed=args.seed), len(ids)


def _vqa(args: argparse.Namespace, paths: dict) -> tuple[AttentionSanity, int]:
    vqa = load_hf_vqa(args.hf)
    first = {}  # each image's first question
    for item in read_vqa(paths["questions"], paths["vqa_annotations"]):
        first.setdefault(item.image_id, item)
    items = list(first.values())[: args.limit]
    files = [image_path(args.root, args.split, item.image_id) for item in items]
    images = torch.cat([vqa.preprocess(load_image(Path(f))).pixel_values for f in files])
    questions = [item.question for item in items]
    return vqa_attention_sanity(vqa, images, questions, seed=args.seed), len(items)


STUDIES = {
    study.task: study
    for study in (
        SanityStudy(CAPTIONS.id, "words", _captions),
        SanityStudy(VQA.id, "answers", _vqa),
    )
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The script's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    add_transformer(parser, STUDIES, default=CAPTIONS.id)
    add_root(parser)
    add_split(parser)
    add_limit(parser, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seeds the re-initialisation")
    add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the check on `argv`'s images; the figures it printed as its last line."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    study = STUDIES[args.task]
    found, images = study.run(args, split_paths(args.root, args.split))
    print(f"{found.targets} {study.targets} of {images} images; top layer {found.top_layer}")
    print("| method | top layer | all layers | independent: highest (layer) |")
    print("| --- | --- | --- | --- |")
    for method, value in found.after_top.items():
        cells = [number_text(v, 2) for v in (value, found.after_all[method])]
        alone = f"{number_text(found.independent[method], 2)} ({found.independent_layer[method]})"
        print(f"| {method} | {' | '.join(cells)} | {alone} |")
    line = {"images": images, "task": args.task, **dataclasses.asdict(found)}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
