"""Train a reference captioner on a COCO-captions-format dataset: the CNN + attention LSTM one
or, with --model blip, a small BLIP transformer (Hugging Face format, loads with --hf FOLDER).

Reads <data>/annotations/captions_{train,val}2014.json and the images in <data>/train2014,
<data>/val2014; validates (nltk corpus BLEU-4 of greedy captions vs all references) after every
epoch and keeps the best checkpoint (config.json, vocab.json, model.pt) in --out. Each
epoch's row in history.json also holds the COCO caption metrics (pycocoevalcap: BLEU-1..4,
METEOR, ROUGE-L, CIDEr-D); the checkpoint is chosen on val by nltk's BLEU-4 (`nltk_bleu4`),
as the bundled model's was.

    mmcam train-captioner --data data/shapes             # a new out/captioner-DATE-TIME
    mmcam train-captioner --data data/shapes --out models/captioner --overwrite
    mmcam train-captioner --model blip --data data/shapes --out out/blip_captioner

`python scripts/train_captioner.py` takes the same flags.
"""

from __future__ import annotations

import argparse

import torch

from mmcam.cli.training_options import training_parser
from mmcam.data.annotations import read_coco_captions, split_paths
from mmcam.data.training_sets import CaptionDataset, collate_captions, seed_everything
from mmcam.data.vocab import Vocabulary
from mmcam.evaluation.caption_metrics import CocoCaptionScorer
from mmcam.explainers.hf import BlipCaptioner
from mmcam.zoo.blip_captioner import CaptionTokens, blip_processor, new_blip
from mmcam.zoo.captioner import Captioner, CaptionerConfig, save_captioner
from mmcam.zoo.training import caption_loss, caption_scores, train
from mmcam.zoo.transformer_parts import save_pretrained

WRITES = "config.json, vocab.json, model.pt (BLIP: save_pretrained), history.json"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's flags; `prog` names it in the usage line (default: the script's name)."""
    p = training_parser(__doc__, "captioner", WRITES, prog)
    p.add_argument(
        "--references",
        type=int,
        default=0,
        help="train on each image's first N captions (0: all). The shapes set's first\n"
        "caption is its canonical one, so N=1 teaches one regular phrasing",
    )
    p.add_argument(
        "--model",
        choices=("cnn", "blip"),
        default="cnn",
        help="cnn: the reference CNN + attention LSTM; blip: a small BLIP (default: %(default)s)",
    )
    p.add_argument("--hidden", type=int, default=256, help="decoder LSTM units (BLIP: hidden size)")
    p.add_argument("--layers", type=int, default=3, help="BLIP: layers of each encoder")
    p.add_argument("--heads", type=int, default=4, help="BLIP: attention heads")
    p.add_argument("--patch", type=int, default=16, help="BLIP: patch size in pixels")
    p.add_argument("--beam-size", type=int, default=1, help="beam size for validation captions")
    p.add_argument(
        "--memory-kernel", type=int, default=1, help="cells each memory vector sees (k x k)"
    )
    p.add_argument(
        "--zero-start",
        action="store_true",
        help="start the LSTM from zeros, not from the image's mean feature, so every word's "
        "evidence passes through attention (sharper per-word maps)",
    )
    p.add_argument(
        "--shuffle-captions",
        type=int,
        default=None,
        metavar="SEED",
        help="data randomisation (Adebayo et al. 2018): give each training image the captions\n"
        "of another (a permutation drawn from SEED); validation keeps the true captions",
    )
    return p


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    """Train on `argv`'s data; the summary line it printed."""
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    train_file = split_paths(args.data, "train")["captions"]
    train_captions = read_coco_captions(train_file).captions
    texts = [c for caps in train_captions.values() for c in caps[: args.references or None]]
    model, vocab, save, name = new_model(args, texts)
    train_set = CaptionDataset(
        args.data,
        "train",
        vocab,
        references=args.references or None,
        limit=args.train_limit,
        shuffle_captions=args.shuffle_captions,
    )
    val = CaptionDataset(args.data, "val", vocab, limit=args.val_limit)
    print(f"{len(train_set)} train / {len(val)} val images, {len(vocab)} words")
    with CocoCaptionScorer() as scorer:  # one METEOR process for every epoch
        return train(
            model,
            train_set,
            collate_captions,
            caption_loss,
            lambda m: caption_scores(m, val, beam_size=args.beam_size, scorer=scorer)[0],
            save,
            args,
            generator,
            metric="nltk_bleu4",
            name=name,
        )


def new_model(args: argparse.Namespace, texts: list[str]) -> tuple:
    """The untrained model `args.model` names, the vocabulary its training data is read with,
    how its checkpoint folder is written, and the name the summary line gives it."""
    if args.model == "blip":
        processor = blip_processor(texts, min_count=args.min_count)
        blip = new_blip(
            processor, hidden=args.hidden, layers=args.layers, heads=args.heads, patch=args.patch
        )
        limit = blip.config.text_config.max_position_embeddings
        tokens = CaptionTokens(processor.tokenizer, limit)
        return BlipCaptioner(blip, processor), tokens, save_pretrained, "blip_captioner"
    vocab = Vocabulary.build(texts, min_count=args.min_count)
    config = CaptionerConfig(
        vocab_size=len(vocab),
        encoder_widths=args.widths,
        hidden_dim=args.hidden,
        start_from_image=not args.zero_start,
        memory_kernel=args.memory_kernel,
    )
    return Captioner(config, vocab), vocab, save_captioner, "captioner"
