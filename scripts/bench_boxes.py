"""What a refined box costs next to the explanation it comes from, in one run.

The bundled captioner explains the 4 bundled sample scenes (every word of each caption, one
batched pass, HiResCAM at encoder.stem); the word maps of the shape words are then boxed by
thresholding (the map's own box) and by refinement from the image (GrabCut, map + image). Times
are medians of interleaved repeats; one torch thread by default (a small shared machine).

    python scripts/bench_boxes.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmcam.app.sample_figures import SAMPLES
from mmcam.boxes.from_maps import boxes_from_map
from mmcam.boxes.refine import refined_box
from mmcam.boxes.settings import box_settings
from mmcam.cli.options import add_benchmark
from mmcam.data.images import preprocess
from mmcam.evaluation.word_categories import WordCategories
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.studies.benchmarking import report, time_side_by_side
from mmcam.zoo.captioner import load_captioner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="hirescam", help="CAM method (default: hirescam)")
    parser.add_argument("--layer", default="encoder.stem", help="explained layer")
    add_benchmark(parser, repeats=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    listing = json.loads((Path(SAMPLES) / "samples.json").read_text())["samples"]
    pictures = [Image.open(Path(SAMPLES) / s["file_name"]).convert("RGB") for s in listing]
    images = torch.stack([preprocess(picture) for picture in pictures])
    arrays = [np.asarray(picture) for picture in pictures]
    explainer = CaptionExplainer(load_captioner(), args.layer)
    captions = explainer.generate(images)
    settings = box_settings(args.method)
    result = explainer.explain(images, captions, method=args.method)
    shape_maps = [
        (index, result.words.maps[index, mention.head])
        for index in range(len(pictures))
        for mention in WordCategories.shapes().find(result.word_labels(index))
    ]

    def explain() -> object:
        return explainer.explain(images, captions, method=args.method)

    def threshold_boxes() -> object:
        return [boxes_from_map(heat, settings.threshold) for _, heat in shape_maps]

    def refined_boxes() -> object:
        return [refined_box(arrays[i], heat, settings.refine_settings()) for i, heat in shape_maps]

    times = time_side_by_side(
        {
            f"explain {len(pictures)} captions (all words)": explain,
            f"threshold boxes ({len(shape_maps)} shape words)": threshold_boxes,
            f"refined boxes ({len(shape_maps)} shape words)": refined_boxes,
        },
        repeats=args.repeats,
        warmup=1,
    )
    explained, _, refined = times.values()
    print(f"{args.method} at {args.layer}, {len(pictures)} images, {args.threads} threads")
    report(
        times,
        {
            "refined_ms_per_map": 1e3 * refined / len(shape_maps),
            "refined_over_explain": refined / explained,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
