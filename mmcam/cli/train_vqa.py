"""Train the reference VQA model (CNN grid + LSTM question + attention) on a VQA v2 dataset.

Reads <data>/v2_OpenEnded_mscoco_{train,val}2014_questions.json, the matching
v2_mscoco_*_annotations.json and the images in <data>/train2014, <data>/val2014; validates
(standard VQA accuracy of the best answer) after every epoch and keeps the best checkpoint
(config.json, vocab.json, answers.json, model.pt) in --out.

    mmcam train-vqa --data data/shapes             # a new out/vqa-DATE-TIME
    mmcam train-vqa --data data/shapes --out models/vqa --overwrite

`python scripts/train_vqa.py` takes the same flags.
"""

from __future__ import annotations

import argparse

import torch

from mmcam.cli.training_options import training_parser
from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.training_sets import VQADataset, collate_vqa, seed_everything, top_answers
from mmcam.data.vocab import Vocabulary
from mmcam.zoo.training import train, vqa_loss, vqa_scores
from mmcam.zoo.vqa_model import VQAConfig, VQANet, save_vqa_model

WRITES = "config.json, vocab.json, answers.json, model.pt, history.json"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    p = training_parser(__doc__, "vqa", WRITES, prog)
    p.add_argument(
        "--answers",
        type=int,
        default=1000,
        help="classify over the N most frequent answers (VQA papers: 1000-3000)",
    )
    p.add_argument("--dim", type=int, default=128, help="fused feature width")
    p.add_argument("--hidden", type=int, default=128, help="question LSTM units")
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
    vocab = Vocabulary.build((item.question for item in items), min_count=args.min_count)
    answers = top_answers(items, args.answers)
    config = VQAConfig(
        vocab_size=len(vocab),
        num_answers=len(answers),
        encoder_widths=args.widths,
        dim=args.dim,
        hidden_dim=args.hidden,
    )
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
        VQANet(config, vocab, answers),
        train_set,
        collate_vqa,
        vqa_loss,
        lambda m: vqa_scores(m, val)[0],
        save_vqa_model,
        args,
        generator,
        metric="overall",
        name="vqa",
    )
