"""Every word's relevance map of a caption, two ways, side by side: mmcam's one batched pass
(one forward and one backward over a replica per word) against one forward and one backward
pass per word (the way Chefer et al.'s public implementation explains one target at a time),
both built from the same taps and rules, on the bundled BLIP captioner (or `--hf FOLDER`),
random images and captions of `--words` words drawn from the model's vocabulary (seeded).

Ends with one JSON line: `speedup_vs_backward_per_word` (the loop's median time over the batched
pass's), `vs_forward` (the batched pass over a plain forward without gradients) and
`max_difference` (the largest absolute difference between the two ways' raw maps, which must be
below 1e-5).

    python scripts/bench_relevance.py                      # relevance, 1 image, 12 words
    python scripts/bench_relevance.py --method rollout --batch 4
"""

from __future__ import annotations

import argparse

import torch

from mmcam.cli.options import add_benchmark
from mmcam.core.bundled import bundled_file
from mmcam.explainers.attention_stack import CaptionStackExplainer
from mmcam.explainers.hf import load_hf_captioner
from mmcam.explainers.rows import caption_tokens
from mmcam.explainers.word_baselines import attention_maps_per_word
from mmcam.studies.benchmarking import report, time_side_by_side

TOLERANCE = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hf", help="BLIP captioning folder (default: the bundled one)")
    parser.add_argument("--method", default="relevance", help="attention method")
    parser.add_argument("--batch", type=int, default=1, help="images (one caption each)")
    parser.add_argument("--words", type=int, default=12, help="words per caption")
    add_benchmark(parser, repeats=10, threads=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    captioner = load_hf_captioner(args.hf or bundled_file("blip_captioner"))
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    words = [i for i, word in enumerate(captioner.tokenizer.convert_ids_to_tokens(
        range(len(captioner.tokenizer)))) if not word.startswith("[")]  # fmt: skip
    picks = torch.randint(len(words), (args.batch, args.words))
    captions = [[words[int(i)] for i in row] for row in picks]
    side = captioner.model.config.vision_config.image_size
    images = torch.randn(args.batch, 3, side, side)

    batched = explainer.explain(images, captions, method=args.method).words.raw
    looped = attention_maps_per_word(explainer, images, captions, args.method)
    difference = float((batched - looped).abs().max())
    if not difference < TOLERANCE:
        raise SystemExit(f"the two ways differ by {difference:.2e} (more than {TOLERANCE:g})")

    tokens, counts = caption_tokens(
        captions, captioner.bos_index, captioner.eos_index, captioner.pad_index, images.device
    )

    def forward() -> None:
        with torch.no_grad():
            captioner.decode_logits(captioner.encode(images), tokens, counts)

    times = time_side_by_side(
        {
            "forward (no grad)": forward,
            "mmcam batched": lambda: explainer.explain(images, captions, method=args.method),
            "forward+backward per word": lambda: attention_maps_per_word(
                explainer, images, captions, args.method
            ),
        },
        repeats=args.repeats,
    )
    ours = times["mmcam batched"]
    figures = {
        "speedup_vs_backward_per_word": times["forward+backward per word"] / ours,
        "vs_forward": ours / times["forward (no grad)"],
        "max_difference": difference,
    }
    report(times, figures, args.out)


if __name__ == "__main__":
    main()
