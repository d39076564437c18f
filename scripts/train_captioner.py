"""Train the reference captioner (CNN + attention LSTM) on a COCO-captions-format dataset.

Reads <data>/annotations/captions_{train,val}2014.json and the images in <data>/train2014,
<data>/val2014; validates (corpus BLEU-4 of greedy captions vs all references) after every
epoch and keeps the best checkpoint (config.json, vocab.json, model.pt) in --out.

    python scripts/train_captioner.py --data data/shapes --out models/captioner
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from mmcam.captioner import Captioner, CaptionerConfig, save_captioner
from mmcam.datasets import (
    CaptionDataset,
    collate_captions,
    read_coco_captions,
    seed_everything,
    split_paths,
)
from mmcam.training import caption_loss, caption_scores, fit
from mmcam.vocab import Vocabulary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="data/shapes", help="dataset root in COCO 2014 layout")
    p.add_argument("--out", default="models/captioner", help="folder for the best checkpoint")
    p.add_argument(
        "--epochs", type=int, default=40, help="most training epochs (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument(
        "--lr",
        type=float,
        default=3e-3,
        help="peak learning rate (AdamW, warm-up then cosine decay)",
    )
    p.add_argument(
        "--references",
        type=int,
        default=0,
        help="train on each image's first N captions (0: all). The shapes set's first\n"
        "caption is its canonical one, so N=1 teaches one regular phrasing",
    )
    p.add_argument(
        "--min-count", type=int, default=1, help="vocabulary: keep words seen this often"
    )
    p.add_argument("--hidden", type=int, default=256, help="decoder LSTM units")
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
    p.add_argument("--beam-size", type=int, default=1, help="beam size for validation captions")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="time budget in minutes: the learning rate anneals by then and training stops "
        "there (a run then depends on machine speed, not only on --seed)",
    )
    p.add_argument(
        "--zero-start",
        action="store_true",
        help="start the LSTM from zeros, not from the image's mean feature, so every word's "
        "evidence passes through attention (sharper per-word maps)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and dropout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    train_file = split_paths(args.data, "train")["captions"]
    train_captions = read_coco_captions(train_file).captions
    texts = [c for caps in train_captions.values() for c in caps[: args.references or None]]
    vocab = Vocabulary.build(texts, min_count=args.min_count)
    config = CaptionerConfig(
        vocab_size=len(vocab),
        encoder_widths=args.widths,
        hidden_dim=args.hidden,
        start_from_image=not args.zero_start,
    )
    model = Captioner(config, vocab)
    train = CaptionDataset(
        args.data, "train", vocab, references=args.references or None, limit=args.train_limit
    )
    val = CaptionDataset(args.data, "val", vocab, limit=args.val_limit)
    loader = DataLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=collate_captions,
        drop_last=True,
    )
    print(
        f"{len(train)} train / {len(val)} val images, {len(vocab)} words, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
    )
    start = time.perf_counter()
    summary = fit(
        model,
        loader,
        caption_loss,
        lambda m: caption_scores(m, val, beam_size=args.beam_size)[0],
        save_captioner,
        args.out,
        metric="bleu4",
        epochs=args.epochs,
        lr=args.lr,
        time_limit=args.time_limit * 60 if args.time_limit else None,
        config=vars(args),
    )
    line = {
        "model": "captioner",
        "best_bleu4": summary["best"],
        "epochs": summary["epochs_run"],
        "seconds": round(time.perf_counter() - start, 1),
        "out": args.out,
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
