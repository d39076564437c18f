"""Demo speed: what one click costs, against the plain forward pass of the same models.

Captioning: caption + every word's Grad-CAM map for one 128 x 128 bundled sample, as the bare
explainer and as the demo's whole request (overlays, box, gallery, PNG and .npz files); the
plain forward is generating the caption without gradients. VQA: the top-5 answers with their
maps and the counterfactual maps, bare and as the demo's request; the plain forward is one
forward pass without gradients. CPU, `--threads` torch threads (the demo's default: 1).
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from mmcam.app.demo import Demo
from mmcam.app.inputs import bundled_examples
from mmcam.cli.options import add_benchmark
from mmcam.data.images import load_image, preprocess
from mmcam.studies.benchmarking import report, time_side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--all-methods", action="store_true", help="also time the other methods (slower)"
    )
    add_benchmark(parser, repeats=10)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as downloads:
        demo = Demo.load(work_dir=downloads)
        sample = bundled_examples()[0]
        image = load_image(sample.image)
        question = sample.questions[0]
        images = preprocess(image)[None]  # [1, 3, 128, 128]
        captioner, vqa = demo.captioner, demo.vqa_model
        tokens = vqa.tokenize([question])

        def caption_forward() -> None:
            with torch.no_grad():
                captioner.generate(images)

        def vqa_forward() -> None:
            with torch.no_grad():
                vqa(images, tokens)

        contenders = {
            "caption: generate (no grad)": caption_forward,
            "caption + all word maps (explainer)": lambda: demo.caption_explainer.explain(images),
            "caption request (demo)": lambda: demo.caption(image),
            "VQA: forward (no grad)": vqa_forward,
            "answers + top-5 maps (explainer)": lambda: demo.vqa_explainer.explain(
                images, [question], top_k=5, counterfactual=True
            ),
            "answer request (demo)": lambda: demo.answer(image, question),
        }
        if args.all_methods:
            for method in ("Grad-CAM++", "Counterfactual", "Guided Grad-CAM", "Occlusion"):
                contenders[f"caption request, {method}"] = lambda m=method: demo.caption(image, m)
                contenders[f"answer request, {method}"] = lambda m=method: demo.answer(
                    image, question, m
                )
        times = time_side_by_side(contenders, repeats=args.repeats)
        words = len(demo.caption(image).words)
    print(f"caption of {words} words for {sample.image.name}; question {question!r}")
    figures = {
        "caption_request_seconds": times["caption request (demo)"],
        "answer_request_seconds": times["answer request (demo)"],
        "caption_maps_vs_generate": times["caption + all word maps (explainer)"]
        / times["caption: generate (no grad)"],
        "caption_request_vs_generate": times["caption request (demo)"]
        / times["caption: generate (no grad)"],
        "answer_maps_vs_forward": times["answers + top-5 maps (explainer)"]
        / times["VQA: forward (no grad)"],
        "answer_request_vs_forward": times["answer request (demo)"]
        / times["VQA: forward (no grad)"],
        "caption_words": words,
    }
    report(times, figures, args.out)


if __name__ == "__main__":
    main()
