"""Occlusion (Zeiler & Fergus 2014): slide a patch over the image and record how much the
target's score drops; no gradients, so it works on any model.

Every (image, patch position) pair is one row of a big batch of occluded copies, run through
the model `batch_size` rows at a time under `torch.no_grad()`. A chunk may hold copies of
several images, so whatever is per image follows its rows: the target is narrowed to the rows
(`select_rows`), and per-image forward arguments (a caption's tokens, a question) are given as
`forward_args` and indexed the same way — the forward never needs to know it sees copies::

    occlusion(lambda x, t, n: m.decode_logits(m.encode(x), t, n), images,
              CaptionLogProb(tokens, lengths), window=8, forward_args=(tokens, lengths))
    occlusion(vqa_model, images, ClassLogit(answers), window=8, forward_args=(questions,))

Each pixel's attribution is the mean drop over the windows that cover it, as Captum's
Occlusion: the per-window drops are spread back over their windows with `F.fold` (a transposed
sliding window), and divided by the fold of ones (the cover counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcam.core.explanation import Explanation, normalize_maps
from mmcam.core.model_state import explaining
from mmcam.core.targets import CaptionLogProb, ClassLogit, Target, WordLogProb


def select_rows(target: Target, rows: Tensor) -> Target:
    """`target` for a batch whose row r is a copy of image `rows[r]`.

    A target with a `select(rows)` method is asked; the class, caption and word targets are
    narrowed here; any other callable is used as is, so it must treat every row alike.
    """
    if hasattr(target, "select"):
        return target.select(rows)
    if isinstance(target, ClassLogit):
        if isinstance(target.classes, int):
            return target
        return ClassLogit(_per_image(target.classes, rows))
    if isinstance(target, WordLogProb):
        position = target.position
        if not isinstance(position, int):
            position = _per_image(position, rows)
        return WordLogProb(target.tokens[rows], target.lengths[rows], position)
    if isinstance(target, CaptionLogProb):
        return CaptionLogProb(target.tokens[rows], target.lengths[rows])
    return target


def _per_image(values: Sequence[int] | Tensor, rows: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=torch.long, device=rows.device).flatten()[rows]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def occlusion(
    forward: Callable[..., Any],
    images: Tensor,
    target: Target,
    window: int | Sequence[int] = 8,
    stride: int | Sequence[int] | None = None,
    fill: float | Tensor = 0.0,
    batch_size: int = 64,
    *,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Occlusion (Zeiler & Fergus 2014): each pixel (i, j) gets the mean over the windows W that
    cover it of  score(image) - score(image with W set to `fill`).

    `window` and `stride` are (height, width) or one int (stride defaults to half the window);
    windows start at 0, stride, 2 stride, ... and the last one is clipped at the border, as in
    Captum. `fill` is a number or a tensor broadcastable to `[B, C, H, W]` (a per-channel mean,
    a blurred copy). Every channel is occluded at once. `batch_size` is the number of occluded
    copies per forward call (Captum's `perturbations_per_eval` times the number of images).
    `forward(copies, *forward_args)` sees copies of several images, so per-image inputs (a
    caption's tokens, a question) go in `forward_args` as tensors with one row per image; they
    are indexed along dim 0 with the copies (anything else is passed unchanged). `model`
    (default: `forward` when it is a module) runs in eval mode, so copies in one batch do not
    interact and BatchNorm statistics are not updated; its mode is restored.

    `raw` is the signed drop `[B, C, H, W]` (the same in every channel, as Captum's; negative:
    hiding the patch raised the score); `maps` its positive part normalised `[B, H, W]`, i.e.
    where the evidence for the target is.
    """
    batch, channels, height, width = images.shape
    win_h, win_w = _pair(window, "window")
    if stride is None:
        step_h, step_w = max(win_h // 2, 1), max(win_w // 2, 1)
    else:
        step_h, step_w = _pair(stride, "stride")
    if win_h > height or win_w > width:
        raise ValueError(f"window {(win_h, win_w)} is larger than the image {(height, width)}")
    if (step_h > win_h and height > win_h) or (step_w > win_w and width > win_w):
        raise ValueError(
            f"stride {(step_h, step_w)} > window {(win_h, win_w)} leaves pixels never occluded"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = images.device
    model = model if model is not None else forward if isinstance(forward, nn.Module) else None
    rows_h = -(-(height - win_h) // step_h) + 1  # window positions down and across (ceil)
    rows_w = -(-(width - win_w) // step_w) + 1
    positions = rows_h * rows_w
    corners = [(top * step_h, left * step_w) for top in range(rows_h) for left in range(rows_w)]
    fill = torch.as_tensor(fill, dtype=images.dtype, device=device)
    per_image_fill = fill.dim() > 0  # else one number, written as is
    if per_image_fill:
        fill = fill.expand(batch, channels, height, width)

    state = explaining(model, device) if model is not None else nullcontext()
    with state, torch.no_grad():
        base = _scores(forward, images, target, forward_args, batch)  # [B]
        drops = torch.empty(batch * positions, device=device)
        for start in range(0, batch * positions, batch_size):
            stop = min(start + batch_size, batch * positions)
            image = torch.arange(start, stop, device=device) // positions  # rows' images: [n]
            copies = images.index_select(0, image)  # [n, C, H, W]
            for row, flat in enumerate(range(start, stop)):  # one window per row: a slice write
                top, left = corners[flat % positions]
                window_of = (slice(None), slice(top, top + win_h), slice(left, left + win_w))
                if per_image_fill:
                    copies[row][window_of] = fill[flat // positions][window_of]
                else:
                    copies[row][window_of] = fill
            args = [a[image] if isinstance(a, Tensor) else a for a in forward_args]
            scores = _scores(forward, copies, select_rows(target, image), args, batch)
            drops[start:stop] = base[image] - scores.float()

    # Spread each window's drop over the pixels it hides, then average by cover counts.
    padded = ((rows_h - 1) * step_h + win_h, (rows_w - 1) * step_w + win_w)
    spread = drops.view(batch, 1, positions).expand(batch, win_h * win_w, positions)
    ones = torch.ones(1, win_h * win_w, positions, device=device)
    fold = dict(output_size=padded, kernel_size=(win_h, win_w), stride=(step_h, step_w))
    totals = F.fold(spread, **fold)[:, 0, :height, :width]  # [B, H, W]
    counts = F.fold(ones, **fold)[:, 0, :height, :width]  # [1, H, W]
    drop = (totals / counts).to(images.dtype)  # [B, H, W]
    maps, empty = normalize_maps(drop.clamp(min=0))
    raw = drop[:, None].expand(batch, channels, height, width)  # [B, C, H, W], a view
    return Explanation(raw, maps, empty, base, "occlusion")


def _scores(
    forward: Callable[..., Any], inputs: Tensor, target: Target, args: Sequence[Any], batch: int
) -> Tensor:
    """The target's scores `[n]` of `inputs` `[n, C, H, W]`, with errors that say what to do."""
    try:
        scores = target(forward(inputs, *args))
    except RuntimeError as error:
        if args or inputs.shape[0] == batch:
            raise
        raise RuntimeError(
            f"the forward failed on {inputs.shape[0]} occluded copies of the {batch} images "
            f"({error}); if it holds per-image inputs (tokens, a question) for {batch} rows, "
            "pass them as forward_args=(...) so they follow the copies"
        ) from error
    if scores.shape != (inputs.shape[0],):
        raise ValueError(
            f"the target gave scores of shape {tuple(scores.shape)} for {inputs.shape[0]} "
            "images; occlusion explains one score per image"
        )
    return scores.float()
