"""The training loop both reference models share, their losses, and their validation scores.

`fit` runs epochs with a tqdm bar, validates after each, and keeps the best checkpoint together
with a `history.json`; each checkpoint folder is written whole into a temporary folder and
renamed into place, so it appears whole or not at all. The scripts write a new folder by
default and refuse to replace an existing one without `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mmcam.data.files import write_folder_atomically, write_json
from mmcam.data.training_sets import VQADataset, collate_vqa
from mmcam.data.vocab import tokenize
from mmcam.evaluation.caption_metrics import (
    COCO_CAPTION_KEYS,
    CocoCaptionScorer,
    caption_bleu,
    coco_caption_scores,
)
from mmcam.evaluation.vqa_accuracy import vqa_accuracy

Batch = dict[str, Any]


# ----------------------------------------------------------------------------- losses


def caption_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Mean cross-entropy of every caption word and EOS, teacher-forced; one encoding per
    image serves all of that image's captions (`image_index`)."""
    memory = model.encode(batch["images"])[batch["image_index"]]  # [N, h*w, D]
    tokens, lengths = batch["tokens"], batch["lengths"]
    logits = model.decode_logits(memory, tokens, lengths)[:, :-1]  # [N, L-1, V]
    targets = tokens[:, 1:]
    steps = torch.arange(targets.shape[1], device=targets.device)
    mask = steps[None] < lengths[:, None]  # [N, L-1]
    return F.cross_entropy(logits[mask], targets[mask])


def vqa_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Cross-entropy against the normalised VQA soft scores (min(#humans / 3, 1) per answer) of
    `model.question_logits` (the reference model: one image encoding serves all of that image's
    questions)."""
    logits = model.question_logits(batch["images"], batch["image_index"], batch["questions"])
    targets = batch["targets"]
    weights = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-6)
    return -(weights * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def caption_scores(
    model: nn.Module,
    dataset: Any,
    *,
    beam_size: int = 1,
    max_length: int = 24,
    batch_size: int = 100,
    scorer: CocoCaptionScorer | None = None,
) -> tuple[dict[str, float], list[dict]]:
    """The COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D; pycocoevalcap) of the
    model's captions of `dataset` (a `CaptionDataset`) against all references, and nltk's
    corpus BLEU-4 on the vocabulary's tokens as `nltk_bleu4`; and the COCO results list.
    Give a `scorer` to keep its METEOR process between calls (one per epoch)."""
    was_training = model.training
    model.eval()
    hypotheses, references, results = [], [], []
    for start in range(0, len(dataset), batch_size):
        rows = range(start, min(start + batch_size, len(dataset)))
        images = torch.stack([dataset[i][0] for i in rows])
        for i, caption in zip(rows, model.generate(images, max_length, beam_size), strict=True):
            image_id = dataset.image_ids[i]
            words = model.words(caption)
            hypotheses.append(words)
            references.append([tokenize(r) for r in dataset.references[image_id]])
            results.append({"image_id": image_id, "caption": " ".join(words)})
    model.train(was_training)
    captions = {r["image_id"]: r["caption"] for r in results}
    truth = {image_id: dataset.references[image_id] for image_id in captions}
    coco = scorer(captions, truth) if scorer else coco_caption_scores(captions, truth)
    scores = {name: coco[name] for name in COCO_CAPTION_KEYS}
    scores["nltk_bleu4"] = caption_bleu(hypotheses, references)["bleu4"]
    return scores, results


@torch.no_grad()
def vqa_scores(
    model: nn.Module, dataset: VQADataset, *, batch_size: int = 64
) -> tuple[dict[str, float], list[dict]]:
    """Standard VQA accuracy (overall and per answer type) of the model's best answers on
    `dataset`; and the VQA results list `[{"question_id", "answer"}]`."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_vqa)
    answers: dict[int, str] = {}
    for batch in loader:
        logits = model.question_logits(batch["images"], batch["image_index"], batch["questions"])
        best = logits.argmax(dim=1).tolist()
        for question_id, index in zip(batch["question_ids"], best, strict=True):
            answers[question_id] = model.answers[index]
    model.train(was_training)
    by_type: dict[str, list[float]] = {}
    for item in dataset.questions():
        score = vqa_accuracy(answers[item.question_id], list(item.answers))
        by_type.setdefault("overall", []).append(score)
        by_type.setdefault(item.answer_type or "unknown", []).append(score)
    scores = {name: sum(v) / len(v) for name, v in by_type.items()}
    results = [{"question_id": q, "answer": a} for q, a in answers.items()]
    return scores, results


# ----------------------------------------------------------------------------- the loop


def learning_rate(peak: float, progress: float, warmup: float = 0.05) -> float:
    """Linear warm-up over the first `warmup` of training, then cosine decay to 1% of `peak`."""
    if progress < warmup:
        return peak * max(progress / warmup, 0.01)
    done = min((progress - warmup) / (1 - warmup), 1.0)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done)))


def fit(
    model: nn.Module,
    train_batches: Iterable[Batch],
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    validate: Callable[[nn.Module], dict[str, float]],
    save: Callable[[nn.Module, Path], Any],
    out: str | Path,
    *,
    metric: str,
    epochs: int = 10,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    time_limit: float | None = None,
    clip: float = 5.0,
    config: dict | None = None,
) -> dict[str, Any]:
    """Train with AdamW (warm-up + cosine learning rate); validate after each epoch; keep the
    checkpoint with the best `metric` (higher is better) in `out` via `save(model, out)`.

    Training progress is the fraction of `epochs` done or, with `time_limit` (seconds), the
    fraction of the time budget used, whichever is larger: the learning rate anneals by the
    deadline however busy the machine is, and training stops there (with a last validation).
    Returns the summary also written to `out/history.json`."""
    out = Path(out)
    total_steps = max(1, epochs * len(train_batches))  # type: ignore[arg-type]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict[str, Any]] = []
    best = -math.inf
    start = time.perf_counter()
    step, progress, summary = 0, 0.0, {}
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(train_batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False)
        for batch in bar:
            progress = step / total_steps
            if time_limit:
                progress = max(progress, (time.perf_counter() - start) / time_limit)
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(lr, progress)
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            step += 1
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{group['lr']:.2e}")
        bar.close()
        scores = validate(model)
        elapsed = time.perf_counter() - start
        improved = scores[metric] > best
        if improved:
            best = scores[metric]
        row = {
            "epoch": epoch,
            "steps": step,
            "train_loss": total / max(count, 1),
            **scores,
            "seconds": round(elapsed, 1),
            "saved": improved,
        }
        history.append(row)
        tqdm.write(json.dumps(row))
        summary = {
            "metric": metric,
            "best": best,
            "epochs_run": epoch,
            "steps": step,
            "seconds": round(elapsed, 1),
            "history": history,
            "config": config or {},
        }
        if improved:
            write_folder_atomically(out, partial(_save_with_history, save, model, summary=summary))
        elif out.exists():  # the best checkpoint stays; its history grows
            write_json(out / "history.json", summary, indent=1)
        if progress >= 1.0:
            tqdm.write(f"time budget of {time_limit:.0f} s used after {step} steps (epoch {epoch})")
            break
    return summary


def _save_with_history(
    save: Callable[[nn.Module, Path], Any], model: nn.Module, folder: Path, summary: dict
) -> None:
    save(model, folder)
    write_json(folder / "history.json", summary, indent=1)


def new_folder(name: str) -> str:
    """`out/<name>-<date>-<time>`: a training run's default folder, never the bundled models."""
    return f"out/{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out_folder(out: str | Path, overwrite: bool) -> None:
    """Refuse an existing, non-empty `out` unless `overwrite`: a training run never replaces a
    checkpoint (the bundled ones in models/ included) by accident."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} already holds files (a checkpoint?); pass --overwrite to replace it once "
            "the new best checkpoint is ready, or choose another --out"
        )


def train(
    model: nn.Module,
    train_set: Any,
    collate: Callable,
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    validate: Callable[[nn.Module], dict[str, float]],
    save: Callable[[nn.Module, Path], Any],
    args: argparse.Namespace,
    generator: torch.Generator,
    *,
    metric: str,
    name: str,
) -> dict:
    """Shuffle `train_set` into batches, `fit`, and print the result as one line of JSON."""
    check_out_folder(args.out, args.overwrite)
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=collate,
        drop_last=True,
    )
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    start = time.perf_counter()
    summary = fit(
        model,
        loader,
        loss_fn,
        validate,
        save,
        args.out,
        metric=metric,
        epochs=args.epochs,
        lr=args.lr,
        time_limit=args.time_limit * 60 if args.time_limit else None,
        config=vars(args),
    )
    line = {
        "model": name,
        f"best_{metric}": summary["best"],
        "epochs": summary["epochs_run"],
        "seconds": round(time.perf_counter() - start, 1),
        "out": args.out,
    }
    print(json.dumps(line))
    return line
