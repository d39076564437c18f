"""Perturbation methods' shared sweep, and occlusion (Zeiler & Fergus 2014): slide a patch over
the image and record how much each target's score drops; no gradients, so it works on any model.

Every (image, perturbation) pair is one row of a big batch of perturbed copies, run through the
model a chunk of rows at a time under `torch.no_grad()`; copies are made and consumed chunk by
chunk, so memory holds one chunk. A chunk may hold copies of several images, so whatever is per
image follows its rows: the target is narrowed to the rows (`select_rows`), and per-image forward
arguments (a caption's tokens, a question) are given as `forward_args` and indexed the same way
— the forward never needs to know it sees copies::

    occlusion(lambda x, t, n: m.decode_logits(m.encode(x), t, n), images,
              CaptionLogProb(tokens, lengths), window=8, forward_args=(tokens, lengths))
    occlusion(vqa_model, images, ClassLogit(answers), window=8, forward_args=(questions,))

A target may give several scores per image (`[n, T]`: every word of a caption, the top answers):
all of them are read from the same forwards, so T maps cost one sweep, not T.

Each pixel's attribution is the mean drop over the windows that cover it, as Captum's
Occlusion: the per-window drops are spread back over their windows with `F.fold` (a transposed
sliding window), and divided by the fold of ones (the cover counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcam.core.explanation import Explanation, normalize_maps
from mmcam.core.model_state import explaining
from mmcam.core.targets import CaptionLogProb, ClassLogit, Target, WordLogProb

CHUNK_ROWS = 32  # perturbed copies per forward by default (fewer when they pass MAX_CHUNK_BYTES)
MAX_CHUNK_BYTES = 64 * 2**20  # perturbed copies held at once, at most (about 110 at 224 px)
MEASURED = "measured"  # `batch_size` that picks the chunk size by timing: fast, not reproducible
PROBE_START = 8  # rows of the first timed chunk when the chunk size is measured
PROBE_GAIN = 0.95  # a doubled chunk is kept while its time per row is below this x the best

ChunkSize = int | str | None
"""A sweep's rows per forward: a positive int, None (`default_chunk_rows`) or `MEASURED`."""


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


def rows_of(argument: Any, rows: Tensor) -> Any:
    """A per-image forward argument for copies of images `rows`: a tensor indexed along dim 0,
    a mapping (a tokenizer's `BatchEncoding`) with its tensor values indexed; else unchanged."""
    if isinstance(argument, Tensor):
        return argument[rows]
    if isinstance(argument, Mapping):
        return {key: rows_of(value, rows) for key, value in argument.items()}
    return argument


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """(height, width) of a positive int or pair, else a ValueError naming `name`."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def default_chunk_rows(row_bytes: int) -> int:
    """The rows per chunk when none is given: CHUNK_ROWS, or fewer so that one chunk of copies
    of `row_bytes` each stays within MAX_CHUNK_BYTES. A function of the input's size alone,
    never of a timing: the batches a forward sees, hence its float rounding, hence the maps, are
    the same on a busy machine and an idle one."""
    return max(1, min(CHUNK_ROWS, MAX_CHUNK_BYTES // max(row_bytes, 1)))


def chunking_policy() -> dict[str, int]:
    """What decides the default chunks, for a dataset run's fingerprint: a release that changes
    it would change the maps, so a run written under another policy is not resumed."""
    return {"chunk_rows": CHUNK_ROWS, "max_chunk_bytes": MAX_CHUNK_BYTES}


def chunk_bounds(
    total: int, batch_size: ChunkSize, row_bytes: int, device: torch.device
) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk of a sweep over `total` rows, for the caller to run.

    `batch_size` fixes the rows per chunk; None uses `default_chunk_rows(row_bytes)`, so the
    same inputs give the same chunks, and bit-identical maps, whatever the machine's load.
    `MEASURED` picks it for throughput by timing the sweep's own first chunks (the time from one
    yield to the next is the caller's work on that chunk): PROBE_START rows, then doubled while
    the time per row keeps falling below PROBE_GAIN x the best so far, up to MAX_CHUNK_BYTES of
    copies; the rest of the sweep runs at the fastest size. On a CPU the per-row cost of a
    forward is not flat in the batch (a big batch's activations fall out of cache), so this can
    be faster, but the chunks, and the maps' last bits (float rounding differs with the batch),
    then depend on the machine's load: maps agree with a fixed size's to float tolerance only.
    """
    measured = batch_size == MEASURED
    if (
        not measured
        and batch_size is not None
        and (not isinstance(batch_size, int) or batch_size < 1)
    ):
        raise ValueError(
            f"batch_size must be >= 1, None (a fixed size from the input's size) or "
            f"{MEASURED!r} (timed), got {batch_size!r}"
        )
    largest = max(1, MAX_CHUNK_BYTES // max(row_bytes, 1))
    if not measured:
        size = default_chunk_rows(row_bytes) if batch_size is None else batch_size
        for start in range(0, total, size):
            yield start, min(start + size, total)
        return
    size = min(PROBE_START, largest)
    probing, best_size, best = True, size, float("inf")
    start = 0
    while start < total:
        stop = min(start + size, total)
        began = time.perf_counter()
        yield start, stop
        rows, start = stop - start, stop
        if not probing or start >= total:
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_row = (time.perf_counter() - began) / rows
        if per_row < best * PROBE_GAIN:
            best, best_size = per_row, size
            probing = size * 2 <= largest
            size = size * 2 if probing else size
        else:  # no better than the best: settle on the best
            probing, size = False, best_size


def perturbed_scores(
    forward: Callable[..., Any],
    copies: Tensor,
    target: Target,
    images_of_rows: Tensor,
    forward_args: Sequence[Any],
    batch: int,
) -> Tensor:
    """The target's scores `[n, T]` of `copies` `[n, C, H, W]` of the images `images_of_rows`,
    with the target and the per-image forward arguments narrowed to those rows."""
    args = [rows_of(argument, images_of_rows) for argument in forward_args]
    scores = target_scores(forward, copies, select_rows(target, images_of_rows), args, batch)
    return scores.reshape(copies.shape[0], -1)


def target_scores(
    forward: Callable[..., Any], inputs: Tensor, target: Target, args: Sequence[Any], batch: int
) -> Tensor:
    """The target's scores of `inputs` `[n, C, H, W]`, `[n]` or `[n, T]` as the target gives
    them, float32, with errors that say what to do."""
    try:
        scores = target(forward(inputs, *args))
    except RuntimeError as error:
        if args or inputs.shape[0] == batch:
            raise
        raise RuntimeError(
            f"the forward failed on {inputs.shape[0]} perturbed copies of the {batch} images "
            f"({error}); if it holds per-image inputs (tokens, a question) for {batch} rows, "
            "pass them as forward_args=(...) so they follow the copies"
        ) from error
    if scores.dim() not in (1, 2) or scores.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"the target gave scores of shape {tuple(scores.shape)} for {inputs.shape[0]} "
            "images; a perturbation method explains one score per image [n] or several [n, T]"
        )
    return scores.float()


def sweep_state(
    forward: Callable[..., Any], model: nn.Module | None, device: torch.device
) -> AbstractContextManager:
    """`model` (default: `forward` when it is a module) in eval mode, so copies in one batch do
    not interact and BatchNorm statistics stay; its mode is restored on exit."""
    model = model if model is not None else forward if isinstance(forward, nn.Module) else None
    return explaining(model, device) if model is not None else nullcontext()


def occlusion(
    forward: Callable[..., Any],
    images: Tensor,
    target: Target,
    window: int | Sequence[int] = 8,
    stride: int | Sequence[int] | None = None,
    fill: float | Tensor = 0.0,
    batch_size: ChunkSize = None,
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
    copies per forward call (Captum's `perturbations_per_eval` times the number of images);
    None: `default_chunk_rows`, a function of the image size (reproducible to the bit);
    `MEASURED`: timed on the first chunks (`chunk_bounds`). `forward(copies, *forward_args)`
    sees copies of several images, so per-image inputs (a caption's tokens, a question) go in
    `forward_args` as tensors (or mappings of tensors) with one row per image; they are indexed
    along dim 0 with the copies (anything else is passed unchanged). `model` (default: `forward`
    when it is a module) runs in eval mode, so copies in one batch do not interact and BatchNorm
    statistics are not updated; its mode is restored.

    `target` gives one score per image, or T (`[n, T]`: every word of a caption, the top
    answers), all read from the same occluded forwards. `raw` is the signed drop `[B, C, H, W]`
    (`[B, T, C, H, W]`; the same in every channel, as Captum's; negative: hiding the patch
    raised the score); `maps` its positive part normalised `[B, H, W]` (`[B, T, H, W]`), i.e.
    where the evidence for the target is; `scores` the unoccluded scores `[B]` (`[B, T]`).

    Args:
        forward: the callable run as `forward(copies, *forward_args)` (usually the model).
        images: the preprocessed images `[B, C, H, W]`.
        target: one score per image `[n]`, or T per image `[n, T]`, from the output.
        window: the occluding patch, (height, width) or one int.
        stride: the step between windows, (height, width) or one int; None: half the window.
        fill: what an occluded pixel is set to: a number or a tensor broadcastable to the images.
        batch_size: occluded copies per forward call; None: fixed from the image size;
            `MEASURED`: timed on the first chunks.
        model: the module run in eval mode when `forward` is not the module itself.
        forward_args: per-image inputs (tokens, a question), one row per image; they follow the
            copies.

    Returns:
        The `Explanation`: `raw` the signed drop, `maps` its positive part scaled to [0, 1],
        `scores` the unoccluded scores.

    Raises:
        ValueError: a window larger than the image, a stride larger than the window (pixels never
            occluded), a bad `batch_size`, or a target that does not give `[n]` or `[n, T]`
            scores.
        RuntimeError: the forward failed on the copies (the message says to pass per-image inputs
            as `forward_args`).
    """
    batch, channels, height, width = images.shape
    win_h, win_w = pair(window, "window")
    if stride is None:
        step_h, step_w = max(win_h // 2, 1), max(win_w // 2, 1)
    else:
        step_h, step_w = pair(stride, "stride")
    if win_h > height or win_w > width:
        raise ValueError(f"window {(win_h, win_w)} is larger than the image {(height, width)}")
    if (step_h > win_h and height > win_h) or (step_w > win_w and width > win_w):
        raise ValueError(
            f"stride {(step_h, step_w)} > window {(win_h, win_w)} leaves pixels never occluded"
        )
    device = images.device
    rows_h = -(-(height - win_h) // step_h) + 1  # window positions down and across (ceil)
    rows_w = -(-(width - win_w) // step_w) + 1
    positions = rows_h * rows_w
    corners = [(top * step_h, left * step_w) for top in range(rows_h) for left in range(rows_w)]
    fill = torch.as_tensor(fill, dtype=images.dtype, device=device)
    per_image_fill = fill.dim() > 0  # else one number, written as is
    if per_image_fill:
        fill = fill.expand(batch, channels, height, width)

    total = batch * positions
    row_bytes = images[0].numel() * images.element_size()
    with sweep_state(forward, model, device), torch.no_grad():
        given = target_scores(forward, images, target, forward_args, batch)  # [B] or [B, T]
        base = given.reshape(batch, -1)  # [B, T]
        drops = torch.empty(total, base.shape[1], device=device)  # [B*P, T]
        for start, stop in chunk_bounds(total, batch_size, row_bytes, device):
            image = torch.arange(start, stop, device=device) // positions  # rows' images: [n]
            copies = images.index_select(0, image)  # [n, C, H, W]
            for row, flat in enumerate(range(start, stop)):  # one window per row: a slice write
                top, left = corners[flat % positions]
                window_of = (slice(None), slice(top, top + win_h), slice(left, left + win_w))
                if per_image_fill:
                    copies[row][window_of] = fill[flat // positions][window_of]
                else:
                    copies[row][window_of] = fill
            scores = perturbed_scores(forward, copies, target, image, forward_args, batch)
            drops[start:stop] = base[image] - scores

    # Spread each window's drop over the pixels it hides, then average by cover counts; one
    # image at a time, so the spread copies stay [T * window, positions].
    targets = base.shape[1]
    padded = ((rows_h - 1) * step_h + win_h, (rows_w - 1) * step_w + win_w)
    fold = dict(output_size=padded, kernel_size=(win_h, win_w), stride=(step_h, step_w))
    counts = F.fold(torch.ones(1, win_h * win_w, positions, device=device), **fold)[0, 0]
    totals = torch.empty(batch, targets, height, width, device=device)
    for index, per_window in enumerate(drops.view(batch, positions, targets)):  # [P, T]
        spread = per_window.T[:, None].expand(targets, win_h * win_w, positions)
        totals[index] = F.fold(spread.reshape(1, -1, positions), **fold)[0, :, :height, :width]
    drop = (totals / counts[:height, :width]).to(images.dtype)  # [B, T, H, W]
    maps, empty = normalize_maps(drop.clamp(min=0))
    raw = drop[:, :, None].expand(batch, targets, channels, height, width)  # a view
    if given.dim() == 1:
        return Explanation(raw[:, 0], maps[:, 0], empty[:, 0], given, "occlusion")
    return Explanation(raw, maps, empty, given, "occlusion")
