"""Train a reference VQA model on a VQA v2 dataset: the CNN one (CNN grid + LSTM question +
attention) or, with --model vilt, a small ViLT transformer (Hugging Face format).

Reads <data>/v2_OpenEnded_mscoco_{train,val}2014_questions.json, the matching
v2_mscoco_*_annotations.json and the images in <data>/train2014, <data>/val2014; validates
(standard VQA accuracy of the best answer) after every epoch and keeps the best checkpoint in
--out: config.json, vocab.json, answers.json, model.pt (CNN) or the `save_pretrained` files of
the model and its processor (ViLT, loads with --hf FOLDER).

    mmcam train-vqa --data data/shapes             # a new out/vqa-DATE-TIME
    mmcam train-vqa --data data/shapes --out models/vqa --overwrite
    mmcam train-vqa --model vilt --data data/shapes --out out/vilt_vqa

`python scripts/train_vqa.py` takes the same flags.
"""

from __future__ import annotations

import argparse

import torch

from mmcam.cli.training_options import training_parser
from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.training_sets import VQADataset, collate_vqa, seed_everything, top_answers
from mmcam.data.vocab import Vocabulary
from mmcam.zoo.blip_captioner import blip_vision
from mmcam.zoo.training import train, vqa_loss, vqa_scores
from mmcam.zoo.transformer_parts import save_pretrained
from mmcam.zoo.vilt_vqa import new_vilt, start_from_vision, vilt_processor
from mmcam.zoo.vqa_model import VQAConfig, VQANet, save_vqa_model

WRITES = "config.json, vocab.json, answers.json, model.pt (ViLT: save_pretrained), history.json"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    p = training_parser(__doc__, "vqa", WRITES, prog)
    p.add_argument(
        "--answers",
        type=int,
        default=1000,
        help="classify over the N most frequent answers (VQA papers: 1000-3000)",
    )
    p.add_argument(
        "--model",
        choices=("cnn", "vilt"),
        default="cnn",
        help="cnn: the reference CNN + LSTM model; vilt: a small ViLT (default: %(default)s)",
    )
    p.add_argument("--dim", type=int, default=128, help="fused feature width (ViLT: hidden size)")
    p.add_argument("--hidden", type=int, default=128, help="question LSTM units")
    p.add_argument("--layers", type=int, default=4, help="ViLT: encoder layers")
    p.add_argument("--heads", type=int, default=4, help="ViLT: attention heads")
    p.add_argument("--patch", type=int, default=16, help="ViLT: patch size in pixels")
    p.add_argument(
        "--init-vision",
        metavar="BLIP_FOLDER",
        help="ViLT: start the patch embedding and the first layers from this BLIP captioner's\n"
        "trained vision encoder (ViLT's authors start from a pre-trained ViT); same hidden\n"
        "size, patch and image size",
    )
    p.add_argument(
        "--permute-answers",
        type=int,
        default=None,
        metavar="SEED",
        help="data randomisation (Adebayo et al. 2018): give each training question the answers\n"
        "of another (a permutation drawn from SEED); validation keeps the true answers",
    )
    return p


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    """Train on `argv`'s data; the summary line it printed."""
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    paths = split_paths(args.data, "train")
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    answers = top_answers(items, args.answers)
    model, save, name = new_model(args, [item.question for item in items], answers)
    vocab = model.vocab
    train_set = VQADataset(
        args.data,
        "train",
        vocab,
        answers,
        keep_unanswerable=False,
        limit=args.train_limit,
        permute_answers=args.permute_answers,
    )
    val = VQADataset(args.data, "val", vocab, answers, limit=args.val_limit)
    print(
        f"{len(train_set)} train / {len(val)} val images, {len(items)} train questions, "
        f"{len(vocab)} words, {len(answers)} answers"
    )
    return train(
        model,
        train_set,
        collate_vqa,
        vqa_loss,
        lambda m: vqa_scores(m, val)[0],
        save,
        args,
        generator,
        metric="overall",
        name=name,
    )


def new_model(args: argparse.Namespace, questions: list[str], answers: list[str]) -> tuple:
    """The untrained model `args.model` names, how its checkpoint folder is written, and the
    name the summary line gives it."""
    if args.model == "vilt":
        processor = vilt_processor(questions, min_count=args.min_count)
        model = new_vilt(
            processor,
            answers,
            hidden=args.dim,
            layers=args.layers,
            heads=args.heads,
            patch=args.patch,
        )
        if args.init_vision:
            start_from_vision(model.model, blip_vision(args.init_vision))
        return model, save_pretrained, "vilt_vqa"
    vocab = Vocabulary.build(questions, min_count=args.min_count)
    config = VQAConfig(
        vocab_size=len(vocab),
        num_answers=len(answers),
        encoder_widths=args.widths,
        dim=args.dim,
        hidden_dim=args.hidden,
    )
    return VQANet(config, vocab, answers), save_vqa_model, "vqa"
