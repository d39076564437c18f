"""The randomisation check of a BLIP captioner's attention methods (Adebayo et al. 2018).

Every caption word's map by raw attention, rollout, attention Grad-CAM and relevance, from the
trained model and from copies whose layers are re-initialised from the top down (cascading):
the mean signed Spearman correlation after the top layer (the decoder's output projection) and
after all layers. Low is what a map that reads the model should give. Prints a table and ends
with one JSON line {"words", "top_layer", "skipped", "after_top": {METHOD: rho}, "after_all":
{...}}.

    python scripts/attention_sanity.py --hf models/blip_captioner --split val --limit 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from mmcam.cli.options import add_limit, add_root, add_split, add_threads, command_parser
from mmcam.data.annotations import read_coco_captions, split_paths
from mmcam.data.images import image_path, load_image
from mmcam.explainers.hf import load_hf_captioner
from mmcam.runs.readout import number_text
from mmcam.studies.attention_sanity import caption_attention_sanity


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The script's flags; `prog` names it in the usage line (default: the script's name)."""
    parser = command_parser(__doc__, prog)
    parser.add_argument("--hf", required=True, help="BLIP captioning folder or hub name")
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
    captioner = load_hf_captioner(args.hf)
    data = read_coco_captions(split_paths(args.root, args.split)["captions"])
    ids = list(data.images)[: args.limit]
    files = [image_path(args.root, args.split, i, data.images[i].file_name) for i in ids]
    images = torch.cat([captioner.preprocess(load_image(Path(f))).pixel_values for f in files])
    found = caption_attention_sanity(captioner, images, seed=args.seed)
    print(f"{found.words} words of {len(ids)} images; top layer {found.top_layer}")
    print("| method | top layer: Spearman | all layers: Spearman |\n| --- | --- | --- |")
    for method, value in found.after_top.items():
        print(f"| {method} | {number_text(value, 2)} | {number_text(found.after_all[method], 2)} |")
    line = {"images": len(ids), **dataclasses.asdict(found)}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
