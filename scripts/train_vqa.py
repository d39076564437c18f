"""Train the reference VQA model (CNN grid + LSTM question + attention) on a VQA v2 dataset.

Reads <data>/v2_OpenEnded_mscoco_{train,val}2014_questions.json, the matching
v2_mscoco_*_annotations.json and the images in <data>/train2014, <data>/val2014; validates
(standard VQA accuracy of the best answer) after every epoch and keeps the best checkpoint
(config.json, vocab.json, answers.json, model.pt) in --out.

    python scripts/train_vqa.py --data data/shapes --out models/vqa
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from mmcam.datasets import (
    VQADataset,
    collate_vqa,
    read_vqa,
    seed_everything,
    split_paths,
    top_answers,
)
from mmcam.training import fit, vqa_loss, vqa_scores
from mmcam.vocab import Vocabulary
from mmcam.vqa_model import VQAConfig, VQANet, save_vqa_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data", default="data/shapes", help="dataset root in VQA v2 / COCO 2014 layout"
    )
    p.add_argument("--out", default="models/vqa", help="folder for the best checkpoint")
    p.add_argument(
        "--epochs", type=int, default=40, help="most training epochs (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per batch (all their questions)"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=3e-3,
        help="peak learning rate (AdamW, warm-up then cosine decay)",
    )
    p.add_argument(
        "--answers",
        type=int,
        default=1000,
        help="classify over the N most frequent answers (VQA papers: 1000-3000)",
    )
    p.add_argument(
        "--min-count", type=int, default=1, help="vocabulary: keep words seen this often"
    )
    p.add_argument("--dim", type=int, default=128, help="fused feature width")
    p.add_argument("--hidden", type=int, default=128, help="question LSTM units")
    p.add_argument(
        "--widths",
        type=int,
        nargs="+",
        default=[32, 64, 64],
        help="encoder conv widths; the last is the explained layer's channels",
    )
    p.add_argument(
        "--train-limit", type=int, default=None, help="use only the first N train images"
    )
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N val images")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="time budget in minutes: the learning rate anneals by then and training stops "
        "there (a run then depends on machine speed, not only on --seed)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and dropout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
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
    model = VQANet(config, vocab, answers)
    train = VQADataset(
        args.data, "train", vocab, answers, keep_unanswerable=False, limit=args.train_limit
    )
    val = VQADataset(args.data, "val", vocab, answers, limit=args.val_limit)
    loader = DataLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=collate_vqa,
        drop_last=True,
    )
    print(
        f"{len(train)} train / {len(val)} val images, {len(items)} train questions, "
        f"{len(vocab)} words, {len(answers)} answers, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
    )
    start = time.perf_counter()
    summary = fit(
        model,
        loader,
        vqa_loss,
        lambda m: vqa_scores(m, val)[0],
        save_vqa_model,
        args.out,
        metric="overall",
        epochs=args.epochs,
        lr=args.lr,
        time_limit=args.time_limit * 60 if args.time_limit else None,
        config=vars(args),
    )
    line = {
        "model": "vqa",
        "best_accuracy": summary["best"],
        "epochs": summary["epochs_run"],
        "seconds": round(time.perf_counter() - start, 1),
        "out": args.out,
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
