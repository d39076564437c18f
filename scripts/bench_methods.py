"""Pixel-method speed: mmcam's occlusion and guided backprop vs Captum's, in one run; every
word's / every answer's occlusion map from one sweep vs Captum once per word / answer; RISE vs
the plain forwards it needs.

torchvision resnet18 (random seeded weights, in-place ReLUs), CPU. Occlusion: the same window,
stride, fill and forward batch on both sides (Captum's `perturbations_per_eval` = P means P
window positions x B images per forward; mmcam's `batch_size` is given P x B). Guided backprop:
a different class per image, one forward and one backward on both sides. A third pair times
occlusion on a one-conv net, where the forward is nearly free, to show the cost of each side's
own machinery.

Sweeps (mmcam's default chunks, `batch_size=None`: 32 copies per forward, fewer past 64 MiB):
all word maps of a 12-word caption for 8 images, by the bundled captioner (its checkpoint, 128
px) and by Show and Tell (resnet18 + 512-unit LSTM, 10,000 words, random seeded weights, --st-
size px), from one sweep vs Captum `Occlusion` once per word (its forward gives every word's
log-probability, its target picks one); the top-5 answer maps of 8 questions by the bundled VQA
model vs Captum once per answer, and `occlusion` itself (16 px windows, stride 8: 225 positions,
the demo's setting; 2 questions) vs the plain forwards it needs (the copies and the images
themselves); RISE of one question's top-5 answers with 2000 masks vs 2000 plain forwards of the
image (the limit). Windows tile the image in a --grid x --grid grid; Captum runs all of an
image's window positions in one forward (`perturbations_per_eval` = grid^2). Plain forwards are
chunked as mmcam's sweeps are (the same default chunk size). The sweeps vs Captum are timed once
by default (ratios near 10x; a run takes minutes), the sweeps vs plain forwards three times
(ratios near 1).

Every result is checked equal to Captum's before timing: 1e-5 of the attributions for guided
backprop, 1e-5 of the scores compared for occlusion (its attributions are differences of
logits or log-probabilities, so they carry the scores' rounding however small they are). One
torch thread by default: on a small shared machine, two threads under load make timings swing
by 2x.
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torchvision
from captum.attr import GuidedBackprop, Occlusion
from torch import nn

from mmcam.cli.options import add_benchmark
from mmcam.core.targets import ClassLogit, ClassLogits, token_logprobs
from mmcam.data.vocab import Vocabulary
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens
from mmcam.explainers.vqa import VQAExplainer
from mmcam.methods.perturbation import chunk_bounds, occlusion
from mmcam.methods.pixel_space import guided_backprop
from mmcam.runs.models import load_run_captioner, load_run_vqa
from mmcam.studies.benchmarking import report, time_side_by_side
from mmcam.zoo.show_and_tell import EXPLAINED_LAYER as SHOW_AND_TELL_LAYER
from mmcam.zoo.show_and_tell import ShowAndTell

QUESTIONS = ["what color is the circle?", "what shape is red?", "is there a square?",
             "how many shapes are there?", "what color is the triangle?", "is there a star?",
             "what shape is blue?", "where is the square?"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2, help="images per batch")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--window", type=int, default=8, help="occlusion window side")
    parser.add_argument("--stride", type=int, default=4, help="occlusion stride")
    parser.add_argument("--per-eval", type=int, default=32, help="window positions per forward")
    parser.add_argument("--gb-batch", type=int, default=8, help="images for guided backprop")
    parser.add_argument("--gb-size", type=int, default=112, help="image side for guided backprop")
    parser.add_argument("--words", type=int, default=12, help="words per caption (sweeps)")
    parser.add_argument("--sweep-batch", type=int, default=8, help="images (sweeps)")
    parser.add_argument("--grid", type=int, default=3, help="occlusion windows per side (sweeps)")
    parser.add_argument("--st-size", type=int, default=112, help="Show and Tell image side")
    parser.add_argument("--masks", type=int, default=2000, help="RISE masks")
    parser.add_argument(
        "--sweep-repeats", type=int, default=1, help="timed repeats of the sweeps vs Captum"
    )
    parser.add_argument(
        "--limit-repeats", type=int, default=3, help="timed repeats of the sweeps vs plain forwards"
    )
    add_benchmark(parser, repeats=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="captum")  # its hook warnings on every call

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    images = torch.randn(args.batch, 3, args.size, args.size)
    classes = [(7 * index) % 1000 for index in range(args.batch)]
    gb_images = torch.randn(args.gb_batch, 3, args.gb_size, args.gb_size)
    gb_classes = [(11 * index) % 1000 for index in range(args.gb_batch)]
    window, stride = args.window, args.stride
    captum_occlusion, captum_guided = Occlusion(model), GuidedBackprop(model)

    def ours_occlusion() -> torch.Tensor:
        rows = args.per_eval * args.batch  # the same forward batch as Captum's
        return occlusion(model, images, ClassLogit(classes), window, stride, 0.0, rows).raw

    def theirs_occlusion() -> torch.Tensor:
        shape, step = (3, window, window), (3, stride, stride)
        return captum_occlusion.attribute(
            images, shape, step, 0.0, classes, perturbations_per_eval=args.per_eval
        )

    def ours_guided() -> torch.Tensor:
        return guided_backprop(model, gb_images, ClassLogit(gb_classes)).raw

    def theirs_guided() -> torch.Tensor:
        return captum_guided.attribute(gb_images, target=gb_classes)

    # The methods' own machinery: the same occlusion on a one-conv net whose forward is nearly free.
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10)).eval()  # fmt: skip
    small_classes = [index % 10 for index in range(args.batch)]
    captum_small = Occlusion(small)

    def ours_small() -> torch.Tensor:
        rows = args.per_eval * args.batch
        return occlusion(small, images, ClassLogit(small_classes), window, stride, 0.0, rows).raw

    def theirs_small() -> torch.Tensor:
        shape, step = (3, window, window), (3, stride, stride)
        return captum_small.attribute(
            images, shape, step, 0.0, small_classes, perturbations_per_eval=args.per_eval
        )

    # occlusion: the scale of the logits it subtracts; guided backprop: of the gradients
    logits_scale = {
        theirs: float(net(images).detach()[torch.arange(args.batch), picked].abs().max())
        for theirs, net, picked in [(theirs_occlusion, model, classes),
                                    (theirs_small, small, small_classes)]
    }  # fmt: skip
    pairs = [(ours_occlusion, theirs_occlusion), (ours_guided, theirs_guided)]
    for ours, theirs in [*pairs, (ours_small, theirs_small)]:
        expected = theirs()
        scale = logits_scale.get(theirs, float(expected.abs().max()))
        torch.testing.assert_close(ours(), expected, rtol=1e-5, atol=1e-5 * scale)

    times = time_side_by_side(
        {
            "mmcam occlusion": ours_occlusion,
            "Captum Occlusion": theirs_occlusion,
            "mmcam guided backprop": ours_guided,
            "Captum GuidedBackprop": theirs_guided,
            "mmcam occlusion, 1-conv net": ours_small,
            "Captum Occlusion, 1-conv net": theirs_small,
        },
        repeats=args.repeats,
        warmup=1,
    )
    sweep_times, sweep_figures = sweeps(args)
    positions = (-(-(args.size - window) // stride) + 1) ** 2
    print(
        f"resnet18, occlusion: {args.batch} x {args.size}px, window {window}, stride {stride}, "
        f"{positions} positions, {args.per_eval} per forward; guided backprop: "
        f"{args.gb_batch} x {args.gb_size}px; {args.threads} threads"
    )
    report(
        {**times, **sweep_times},
        {
            **sweep_figures,
            "occlusion_speedup_vs_captum": times["Captum Occlusion"] / times["mmcam occlusion"],
            "guided_backprop_speedup_vs_captum": times["Captum GuidedBackprop"]
            / times["mmcam guided backprop"],
            "occlusion_overhead_speedup_vs_captum": times["Captum Occlusion, 1-conv net"]
            / times["mmcam occlusion, 1-conv net"],
        },
        args.out,
    )


def checked_times(contenders: dict, check, repeats: int) -> dict[str, float]:
    """Run each contender once, `check(outputs)`, then time them side by side (the first runs
    were the warm-up)."""
    check({name: run() for name, run in contenders.items()})
    return time_side_by_side(contenders, repeats=repeats, warmup=0)


def tiles(side: int, grid: int) -> int:
    """The window (= stride) that tiles `side` pixels in `grid` windows."""
    return -(-side // grid)


def caption_sweep(name: str, model, images, captions, args) -> dict[str, float]:
    """All word maps by mmcam's one sweep and by Captum once per word; checked equal."""
    window = tiles(images.shape[-1], args.grid)
    tokens, counts = caption_tokens(
        captions, model.bos_index, model.eos_index, model.pad_index, images.device
    )
    explainer = CaptionExplainer(model, SHOW_AND_TELL_LAYER if name == "Show and Tell" else
                                 model.explained_layer)  # fmt: skip

    def words(x, t, n):  # every word's log-probability: Captum's target picks one
        return token_logprobs(model.decode_logits(model.encode(x), t, n), t, n)

    captum = Occlusion(words)
    shape, step = (3, window, window), (3, window, window)

    def ours():
        settings = {"window": window, "stride": window}
        return explainer.explain(images, captions, method="occlusion", perturbation=settings)

    def theirs():
        return torch.stack([
            captum.attribute(images, shape, step, 0.0, target=word,
                             perturbations_per_eval=args.grid**2,
                             additional_forward_args=(tokens, counts))[:, 0]
            for word in range(args.words)
        ], 1)  # fmt: skip

    def check(outputs):
        with torch.no_grad():
            scale = float(words(images, tokens, counts).abs().max())
        found = outputs[f"{name}: mmcam, every word from one sweep"].words.raw
        expected = outputs[f"{name}: Captum Occlusion once per word"]
        torch.testing.assert_close(found, expected, rtol=0, atol=1e-5 * scale)

    return checked_times(
        {f"{name}: mmcam, every word from one sweep": ours,
         f"{name}: Captum Occlusion once per word": theirs},
        check, args.sweep_repeats,
    )  # fmt: skip


def plain_forwards(forward, images, copies: int, *args) -> None:
    """`copies` forwards of `images` (cycled), no perturbation: the limit. Chunked as mmcam's
    sweeps are (`chunk_bounds`' default), so only the methods' own work differs."""
    rows = torch.arange(copies) % images.shape[0]
    row_bytes = images[0].numel() * images.element_size()
    with torch.no_grad():
        for start, stop in chunk_bounds(copies, None, row_bytes, images.device):
            chunk = rows[start:stop]
            forward(images[chunk], *[a[chunk] for a in args])


def sweeps(args) -> tuple[dict[str, float], dict[str, float]]:
    """Times and figures of the caption, VQA and RISE sweeps."""
    torch.manual_seed(0)
    times: dict[str, float] = {}
    bundled = load_run_captioner().model
    vocab = Vocabulary([f"word{i}" for i in range(10000)])
    captioners = [
        ("bundled captioner", bundled, 128, len(bundled.vocab)),
        ("Show and Tell", ShowAndTell(vocab).eval(), args.st_size, len(vocab)),
    ]
    for name, model, side, size in captioners:
        first = Vocabulary.UNK_INDEX + 1
        captions = torch.randint(first, size, (args.sweep_batch, args.words)).tolist()
        images = torch.rand(args.sweep_batch, 3, side, side)
        times |= caption_sweep(name, model, images, captions, args)

    vqa = load_run_vqa().model
    images = torch.rand(args.sweep_batch, 3, 128, 128)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.sweep_batch)]
    tokens = vqa.tokenize(questions)
    explainer = VQAExplainer(vqa, vqa.explained_layer)
    window = tiles(128, args.grid)
    settings = {"window": window, "stride": window}
    with torch.no_grad():
        logits = vqa(images, tokens)
    best = logits.topk(5, dim=1).indices
    captum = Occlusion(vqa)

    def ours_answers():
        return explainer.explain(images, questions, top_k=5, method="occlusion",
                                 perturbation=settings)  # fmt: skip

    def theirs_answers():
        return torch.stack([
            captum.attribute(images, (3, window, window), (3, window, window), 0.0,
                             target=best[:, rank].tolist(), perturbations_per_eval=args.grid**2,
                             additional_forward_args=(tokens,))[:, 0]
            for rank in range(5)
        ], 1)  # fmt: skip

    def check_answers(outputs):
        found = outputs["VQA: mmcam, top-5 answers from one sweep"].maps.raw
        expected = outputs["VQA: Captum Occlusion once per answer"]
        scale = float(logits.abs().max())
        torch.testing.assert_close(found, expected, rtol=0, atol=1e-5 * scale)

    pair_of, pair_best, pair_tokens = images[:2], best[:2], tokens[:2]

    def occlusion_alone():  # the method at the demo's setting: 225 positions, 2 questions
        return occlusion(vqa, pair_of, ClassLogits(pair_best), 16, 8, forward_args=(pair_tokens,))

    times |= checked_times(
        {"VQA: mmcam, top-5 answers from one sweep": ours_answers,
         "VQA: Captum Occlusion once per answer": theirs_answers},
        check_answers, args.sweep_repeats,
    )  # fmt: skip
    copies = 2 * (15 * 15 + 1)  # every copy, and the images themselves
    times |= time_side_by_side(
        {"VQA: mmcam occlusion() of the top-5 answers": occlusion_alone,
         f"VQA: {copies} plain forwards": lambda: plain_forwards(
             vqa, pair_of, copies, pair_tokens)},
        repeats=args.limit_repeats, warmup=1,
    )  # fmt: skip

    one, question = images[:1], questions[:1]

    def ours_rise():
        return explainer.explain(one, question, top_k=5, method="rise",
                                 perturbation={"n_masks": args.masks})  # fmt: skip

    def check_rise(outputs):
        again = ours_rise().maps.raw  # seeded: the same masks, the same map
        torch.testing.assert_close(outputs["RISE: mmcam, top-5 answers"].maps.raw, again)

    times |= checked_times(
        {"RISE: mmcam, top-5 answers": ours_rise,
         f"RISE: {args.masks} plain forwards": lambda: plain_forwards(
             vqa, one, args.masks, tokens[:1])},
        check_rise, args.limit_repeats,
    )  # fmt: skip
    figures = {
        "occlusion_all_words_speedup_vs_captum": times[
            "bundled captioner: Captum Occlusion once per word"]
        / times["bundled captioner: mmcam, every word from one sweep"],
        "show_and_tell_occlusion_all_words_speedup_vs_captum": times[
            "Show and Tell: Captum Occlusion once per word"]
        / times["Show and Tell: mmcam, every word from one sweep"],
        "occlusion_all_answers_speedup_vs_captum": times["VQA: Captum Occlusion once per answer"]
        / times["VQA: mmcam, top-5 answers from one sweep"],
        "occlusion_vs_plain_forwards": times["VQA: mmcam occlusion() of the top-5 answers"]
        / times[f"VQA: {copies} plain forwards"],
        "rise_vs_plain_forwards": times["RISE: mmcam, top-5 answers"]
        / times[f"RISE: {args.masks} plain forwards"],
    }  # fmt: skip
    return times, figures


if __name__ == "__main__":
    main()
