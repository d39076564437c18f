"""Per-word caption maps, three ways, side by side: mmcam's one batched pass; one forward and
one backward per word (Captum's LayerGradCam per word, what Captum and pytorch-grad-cam users
must do); one shared forward and one backward per word through the retained graph (torchcam's
way). Batch of 8 random images, captions of 12 words, a COCO-sized vocabulary, random seeded
weights, three captioners: Show and Tell (resnet18 encoder, 512-unit LSTM, 224x224: the
headline figures), and the bundled attention captioner's architecture at its bundled size and
with a 512-unit LSTM (128x128). `protocol_check_cost` is the extra time of the protocol check
(one plain teacher-forced forward without gradients) as a fraction of an unchecked explanation;
`vqa_protocol_check_cost` the same for the VQA explainer's check (one plain forward of image and
question without gradients) on the bundled VQA model's architecture (128x128, random seeded
weights, 3000 answers as VQA v2's usual answer list, questions of `--words` words, top 3
answers), timed side by side in the same run."""

from __future__ import annotations

import argparse

import torch

from mmcam.cli.options import add_benchmark
from mmcam.data.vocab import Vocabulary
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens
from mmcam.explainers.vqa import VQAExplainer
from mmcam.explainers.word_baselines import maps_forward_backward_per_word, maps_retained_graph
from mmcam.studies.benchmarking import report, time_side_by_side
from mmcam.zoo.captioner import EXPLAINED_LAYER, Captioner, CaptionerConfig
from mmcam.zoo.show_and_tell import EXPLAINED_LAYER as SHOW_AND_TELL_LAYER
from mmcam.zoo.show_and_tell import ShowAndTell
from mmcam.zoo.vqa_model import VQAConfig, VQANet

BUNDLED = {"memory_kernel": 3, "start_from_image": False}  # as models/captioner/config.json
ATTENTION_SIZES = {
    "attention": BUNDLED,
    "attention512": {
        **BUNDLED,
        "encoder_widths": [64, 128, 256],
        "memory_dim": 256,
        "hidden_dim": 512,
        "attention_dim": 256,
        "embed_dim": 128,
    },
}
VQA_ANSWERS = 3000


def captioners(vocab: Vocabulary):
    """(name, model, explained layer, image side) of each benchmarked captioner."""
    yield "show_and_tell", ShowAndTell(vocab).eval(), SHOW_AND_TELL_LAYER, 224
    for name, overrides in ATTENTION_SIZES.items():
        config = CaptionerConfig(vocab_size=len(vocab), **overrides)
        yield name, Captioner(config, vocab).eval(), EXPLAINED_LAYER, 128


def contenders(model, layer: str, images: torch.Tensor, captions: list[list[int]]) -> dict:
    tokens, counts = caption_tokens(
        captions, model.bos_index, model.eos_index, model.pad_index, images.device
    )
    explainer = CaptionExplainer(model, layer)
    unchecked = CaptionExplainer(model, layer, check=False)

    def forward() -> None:
        with torch.no_grad():
            model.decode_logits(model.encode(images), tokens, counts)

    return {
        "forward (no grad)": forward,
        "mmcam batched": lambda: explainer.explain(images, captions),
        "mmcam batched, check=False": lambda: unchecked.explain(images, captions),
        "forward+backward per word (Captum)": lambda: maps_forward_backward_per_word(
            model, layer, images, captions
        ),
        "backward per word, retained graph": lambda: maps_retained_graph(
            model, layer, images, captions
        ),
    }


def vqa_contenders(vocab: Vocabulary, batch: int, words: int) -> dict:
    """The VQA explainer on the bundled VQA architecture, with and without the protocol check."""
    config = VQAConfig(vocab_size=len(vocab), num_answers=VQA_ANSWERS)
    model = VQANet(config, vocab, [f"answer{i}" for i in range(VQA_ANSWERS)]).eval()
    images = torch.rand(batch, 3, config.image_size, config.image_size)
    lengths = torch.randint(max(words // 2, 1), words + 1, (batch,)).tolist()
    questions = [" ".join(f"word{i}" for i in range(length)) for length in lengths]
    explainer = VQAExplainer(model, model.explained_layer)
    unchecked = VQAExplainer(model, model.explained_layer, check=False)
    return {
        "mmcam": lambda: explainer.explain(images, questions),
        "mmcam, check=False": lambda: unchecked.explain(images, questions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--words", type=int, default=12, help="words per caption")
    parser.add_argument(
        "--vocab",
        type=int,
        default=10000,
        help="vocabulary size (default: 10000, about a COCO caption vocabulary of the words "
        "seen 5 or more times)",
    )
    parser.add_argument(
        "--all-step-logits",
        action="store_true",
        help="make mmcam ask the decoders for every step's logits, as for a model without "
        "decode_last_logits (to see what that method buys)",
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="time only mmcam with and without the protocol check (protocol_check_cost, and "
        "vqa_protocol_check_cost for the VQA explainer), for many repeats on a busy machine",
    )
    add_benchmark(parser, repeats=5, threads=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab = Vocabulary([f"word{i}" for i in range(args.vocab)])
    first_word = len(vocab) - args.vocab
    captions = torch.randint(first_word, len(vocab), (args.batch, args.words)).tolist()
    times, figures = {}, {}
    for name, model, layer, side in captioners(vocab):
        if args.all_step_logits:  # the explainer falls back to decode_logits
            model.decode_last_logits = model.decode_logits
        images = torch.rand(args.batch, 3, side, side)
        timed = contenders(model, layer, images, captions)
        if args.check_only:
            timed = {key: timed[key] for key in ("mmcam batched", "mmcam batched, check=False")}
        measured = time_side_by_side(timed, repeats=args.repeats, warmup=1)
        times.update({f"{name}: {contender}": t for contender, t in measured.items()})
        ours = measured["mmcam batched"]
        prefix = "" if name == "show_and_tell" else f"{name}_"
        figures[f"{prefix}protocol_check_cost"] = ours / measured["mmcam batched, check=False"] - 1
        if args.check_only:
            continue
        figures[f"{prefix}speedup_vs_forward_backward_per_word"] = (
            measured["forward+backward per word (Captum)"] / ours
        )
        figures[f"{prefix}speedup_vs_backward_per_word"] = (
            measured["backward per word, retained graph"] / ours
        )
        figures[f"{prefix}vs_forward"] = ours / measured["forward (no grad)"]
    measured = time_side_by_side(
        vqa_contenders(vocab, args.batch, args.words), repeats=args.repeats, warmup=1
    )
    times.update({f"vqa: {contender}": t for contender, t in measured.items()})
    figures["vqa_protocol_check_cost"] = measured["mmcam"] / measured["mmcam, check=False"] - 1
    report(times, figures, args.out)


if __name__ == "__main__":
    main()
