"""RISE (Petsiuk, Das & Saenko, BMVC 2018): randomised input sampling for explanation.

N random binary masks on a coarse grid, each cell kept with probability p, are upsampled
bilinearly and shifted at random by up to one cell, so the kept regions have soft edges and
start anywhere; the model scores the image seen through each mask, and a pixel's saliency is
the score-weighted average of the masks that showed it:

    S(i, j) = 1 / (N p) * sum_n score(image * M_n) * M_n(i, j)

Every image sees the same masks, and every target of an image (each word of a caption, each top
answer) is read from the same masked forwards. The masks' small grids and shifts are drawn up
front from a seeded generator (a few bytes each); the full-size masks and the masked copies are
made and consumed chunk by chunk, so the result does not depend on the chunk size and memory
holds one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.explanation import Explanation, normalize_maps
from mmcam.core.targets import Target
from mmcam.methods.perturbation import (
    ChunkSize,
    chunk_bounds,
    pair,
    perturbed_scores,
    sweep_state,
    target_scores,
)

PAPER_GRID = 7  # cells across the shorter side when `cell` is not given (the paper's 7 x 7)


class RiseMasks:
    """RISE's N masks for `size` (height, width): `chunk(start, stop)` gives masks start..stop-1
    `[n, H, W]` in [0, 1], the same whatever the chunks.

    A binary grid of ceil(H / cell) x ceil(W / cell) cells, plus one, each cell 1 with
    probability `p`, is upsampled bilinearly (half-pixel centres) to (cells + 1) x cell pixels
    and cropped to H x W at a random offset in [0, cell) down and across (Petsiuk et al.,
    section 3.2). Bilinear upsampling is separable, so a mask is made as Y G X^T with G its
    grid and Y, X the interpolation matrices of its shift: no full-size upsampled copy.
    """

    def __init__(
        self,
        n_masks: int,
        size: tuple[int, int],
        cell: int | Sequence[int] | None = None,
        p: float = 0.5,
        seed: int = 0,
    ) -> None:
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        if not 0 < p <= 1:
            raise ValueError(f"p, the probability a cell is kept, must be in (0, 1], got {p}")
        height, width = size
        if cell is None:
            side = -(-min(height, width) // PAPER_GRID)
            cell = (side, side)
        self.cell = pair(cell, "cell")
        if self.cell[0] > height or self.cell[1] > width:
            raise ValueError(f"cell {self.cell} is larger than the image {size}")
        self.size, self.p, self.count = (height, width), p, n_masks
        grid = (-(-height // self.cell[0]) + 1, -(-width // self.cell[1]) + 1)
        generator = torch.Generator().manual_seed(seed)
        self.grids = (torch.rand(n_masks, *grid, generator=generator) < p).float()
        self.shifts = torch.stack(
            [torch.randint(0, step, (n_masks,), generator=generator) for step in self.cell], 1
        )  # [N, 2]: rows down, columns across
        # [cell, H, h + 1] and [cell, W, w + 1]: the interpolation matrix of every shift
        self.down = _interpolation(grid[0], self.cell[0], height)
        self.across = _interpolation(grid[1], self.cell[1], width)

    def __len__(self) -> int:
        return self.count

    def chunk(self, start: int, stop: int, device: torch.device) -> Tensor:
        """Masks start..stop-1 `[n, H, W]` on `device`."""
        shifts = self.shifts[start:stop]
        down = self.down[shifts[:, 0]].to(device)  # [n, H, h + 1]
        across = self.across[shifts[:, 1]].to(device)  # [n, W, w + 1]
        grids = self.grids[start:stop].to(device)  # [n, h + 1, w + 1]
        return down @ grids @ across.transpose(1, 2)  # [n, H, W]


def _interpolation(cells: int, cell: int, length: int) -> Tensor:
    """`[cell, length, cells]`: row s maps `cells` values to output pixels s..s+length-1 of
    their bilinear upsampling to cells x cell pixels (half-pixel centres, as
    `F.interpolate(mode="bilinear", align_corners=False)`): pixel o reads the source
    coordinate (o + 0.5) / cell - 0.5, clamped at 0, between its two nearest cells."""
    pixels = torch.arange(cell)[:, None] + torch.arange(length)[None, :]  # [cell, length]
    source = ((pixels + 0.5) / cell - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=cells - 1)
    high = (low + 1).clamp(max=cells - 1)
    weight = source - low
    matrix = torch.zeros(cell, length, cells)
    matrix.scatter_add_(2, low[..., None], (1 - weight)[..., None])
    matrix.scatter_add_(2, high[..., None], weight[..., None])
    return matrix


def rise(
    forward: Callable[..., Any],
    images: Tensor,
    target: Target,
    n_masks: int = 2000,
    cell: int | Sequence[int] | None = None,
    p: float = 0.5,
    batch_size: ChunkSize = None,
    *,
    seed: int = 0,
    fill: float | Tensor = 0.0,
    masks: Tensor | None = None,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """RISE (Petsiuk et al. 2018): S = 1 / (N p) * sum_n score(image seen through M_n) * M_n.

    `n_masks` random masks (`RiseMasks`: cells of `cell` pixels, (height, width) or one int,
    default a 7 x 7 grid over the shorter side as in the paper; each kept with probability `p`;
    drawn from `seed`, so a call is reproducible). A pixel a mask hides is set to `fill` (a
    number or a tensor broadcastable to `[B, C, H, W]`; the paper's 0):
    copy = fill + (image - fill) * M. `masks` `[N, H, W]` replaces the random masks by given
    ones (then `n_masks`, `cell` and `seed` are unused; `p` still divides). `batch_size` is the
    number of masks per forward (times the number of images), None or `MEASURED` as for
    `occlusion`. `forward`, `forward_args` and `model` as for `occlusion`.

    `target` gives one score per image or T (`[n, T]`), all read from the same masked forwards.
    `raw` is S `[B, H, W]` (`[B, T, H, W]`); `maps` normalise S after subtracting the mean score
    times the masks' coverage (sum_n M_n / (N p)), which removes what does not depend on the
    image (a constant score gives a flat map, flagged empty, not the masks' sampling noise);
    `scores` are the unmasked scores `[B]` (`[B, T]`).

    Args:
        forward: the callable run as `forward(copies, *forward_args)` (usually the model).
        images: the preprocessed images `[B, C, H, W]`.
        target: one score per image `[n]`, or T per image `[n, T]`, from the output.
        n_masks: N, the number of random masks.
        cell: a mask cell's size in pixels, (height, width) or one int; None: a 7 x 7 grid over
            the shorter side.
        p: the probability that a cell is kept.
        batch_size: masks per forward call (times the number of images); None or `MEASURED` as
            for `occlusion`.
        seed: the masks' random seed.
        fill: what a hidden pixel is set to: a number or a tensor broadcastable to the images.
        masks: given masks `[N, H, W]` instead of random ones.
        model: the module run in eval mode when `forward` is not the module itself.
        forward_args: per-image inputs (tokens, a question), one row per image.

    Returns:
        The `Explanation`: `raw` the saliency S, `maps` S less the score's mean share, scaled
        to [0, 1], `scores` the unmasked scores.

    Raises:
        ValueError: `n_masks < 1`, `p` outside (0, 1], a cell larger than the image, masks of
            the wrong shape, a bad `batch_size`, or a target that does not give `[n]` or
            `[n, T]` scores.
        RuntimeError: the forward failed on the copies.
    """
    batch, channels, height, width = images.shape
    device = images.device
    if masks is None:
        masks_of = RiseMasks(n_masks, (height, width), cell, p, seed)
    else:
        if masks.dim() != 3 or tuple(masks.shape[1:]) != (height, width):
            raise ValueError(
                f"masks must be [N, {height}, {width}] for these images, got {tuple(masks.shape)}"
            )
        if not 0 < p <= 1:
            raise ValueError(f"p, the probability a cell is kept, must be in (0, 1], got {p}")
        masks_of = _GivenMasks(masks)
    count = len(masks_of)
    fill = torch.as_tensor(fill, dtype=images.dtype, device=device)
    if fill.dim() > 0:
        fill = fill.expand(batch, channels, height, width)

    row_bytes = batch * images[0].numel() * images.element_size()  # a row: one mask, B copies
    with sweep_state(forward, model, device), torch.no_grad():
        shown = images - fill  # copy = fill + (image - fill) * mask, one op per chunk below
        given = target_scores(forward, images, target, forward_args, batch)  # [B] or [B, T]
        base = given.reshape(1, -1)  # [1, B*T]: the unmasked scores
        targets = base.shape[1] // batch
        # Sums of (score - base) * mask: each chunk's in float32 (one matmul, with a row of ones
        # for the coverage), summed over chunks in float64. The maps subtract two nearly equal
        # sums (below), so the scores are taken relative to the unmasked ones, which keeps the
        # terms small, and the sum over chunks does not lose what float32 would.
        sums = torch.zeros(batch * targets + 1, height * width, device=device, dtype=torch.float64)
        score_sums = torch.zeros(batch * targets, device=device, dtype=torch.float64)
        for start, stop in chunk_bounds(count, batch_size, row_bytes, device):
            chunk = masks_of.chunk(start, stop, device).to(images.dtype)  # [m, H, W]
            m = stop - start
            image = torch.arange(batch, device=device).repeat(m)  # row r: mask r // B
            copies = torch.addcmul(fill, shown[None], chunk[:, None, None])  # [m, B, C, H, W]
            scores = perturbed_scores(
                forward, copies.view(m * batch, channels, height, width), target, image,
                forward_args, batch,
            ).view(m, batch * targets) - base  # fmt: skip
            weights = torch.cat([scores, torch.ones(m, 1, device=device)], dim=1)  # [m, B*T+1]
            sums += weights.T @ chunk.float().view(m, height * width)
            score_sums += scores.sum(dim=0)
    norm = count * p
    coverage = sums[-1] / norm  # sum_n M_n / (N p)
    relative = sums[:-1].view(batch, targets, -1) / norm  # sum_n (f_n - f_0) M_n / (N p)
    offsets = base.double().view(batch, targets, 1)
    saliency = relative + offsets * coverage  # S = sum_n f_n M_n / (N p)
    centred = relative - (score_sums.view(batch, targets, 1) / count) * coverage  # [B, T, H*W]
    maps, empty = normalize_maps(centred.view(batch, targets, height, width))
    maps = maps.to(images.dtype)
    raw = saliency.view(batch, targets, height, width).to(images.dtype)
    if given.dim() == 1:
        return Explanation(raw[:, 0], maps[:, 0], empty[:, 0], given, "rise")
    return Explanation(raw, maps, empty, given, "rise")


class _GivenMasks:
    """Masks given by the caller `[N, H, W]`, served in chunks like `RiseMasks`."""

    def __init__(self, masks: Tensor) -> None:
        self.masks = masks

    def __len__(self) -> int:
        return self.masks.shape[0]

    def chunk(self, start: int, stop: int, device: torch.device) -> Tensor:
        return self.masks[start:stop].to(device)
