"""`make run`: caption the bundled sample scenes with per-word maps and answer questions about
them with answer maps, using the bundled checkpoints, then caption them with the bundled
transformer (BLIP) and map every word by its attention methods (relevance first). Writes PNG
figures, summary.json and transformer_summary.json to --out and prints what the models said and
where they looked."""

from __future__ import annotations

import argparse
import json
import time

import torch

from mmcam.app.sample_figures import SAMPLES, write_sample_figures
from mmcam.app.transformer_figures import write_transformer_figures
from mmcam.cli.options import add_out, add_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_out(parser, "out", "the figures")
    parser.add_argument("--samples", default=str(SAMPLES), help="folder with samples.json")
    add_threads(parser, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = write_sample_figures(args.out, args.samples)
    for sample in result["samples"]:
        print(f"\n{sample['image']}: {sample['caption']}")
        _print_pointing(sample["word_pointing"], "  ")
        for answer in sample["answers"]:
            mark = (
                "ok" if answer["answer"] == answer["expected"] else f"expected {answer['expected']}"
            )
            said = f"{answer['answer']} ({answer['probability']:.2f}, {mark})"
            print(f"  Q: {answer['question']}  A: {said}")
        print("  figures: " + ", ".join(sample["figures"]))
    transformer = write_transformer_figures(args.out, args.samples)
    print("\ntransformer captioner (BLIP), every word by each attention method:")
    for sample in transformer:
        print(f"  {sample['image']}: {sample['caption']}  ({sample['figure']})")
        _print_pointing(sample["word_pointing"], "    ")
    seconds = time.perf_counter() - start
    pointing = _pointing(result["samples"])
    answers = [a["answer"] == a["expected"] for s in result["samples"] for a in s["answers"]]
    print(f"\nboxes of the default map (white: its own, green: map + image), {args.out}/boxes.png:")
    for found in result["boxes"]:
        print(
            f"  '{found['word']}': own box IoU {found['threshold_iou']:.2f}, "
            f"refined IoU {found['refined_iou']:.2f}"
        )
    located = {
        kind: sum(b[f"{kind}_iou"] >= 0.5 for b in result["boxes"]) / max(len(result["boxes"]), 1)
        for kind in ("threshold", "refined")
    }
    print(f"\n{len(result['samples'])} samples in {seconds:.1f} s; figures in {args.out}/")
    print(
        json.dumps(
            {
                "word_pointing": pointing,
                "transformer_word_pointing": _pointing(transformer),
                "answers_correct": sum(answers) / max(len(answers), 1),
                "default_box_loc_accuracy": located,
                "seconds": round(seconds, 1),
            }
        )
    )


def _print_pointing(points: list[dict], indent: str) -> None:
    """Whether each named shape's word map peaks inside its box, method by method."""
    for point in points:
        verdicts = ", ".join(
            f"{method} {'inside' if inside else 'OUTSIDE'}"
            for method, inside in point["peak_inside"].items()
        )
        print(f"{indent}peak of the map of '{point['word']}' vs its box: {verdicts}")


def _pointing(samples: list[dict]) -> dict[str, float]:
    """Per method, the share of named shapes whose word map peaks inside the shape's box."""
    points = [p["peak_inside"] for sample in samples for p in sample["word_pointing"]]
    methods = points[0] if points else {}
    return {method: sum(p[method] for p in points) / len(points) for method in methods}


if __name__ == "__main__":
    main()
