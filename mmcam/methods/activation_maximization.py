"""Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015): the
input a channel, a unit, a class, a caption or an answer likes best, by gradient ascent on

    x* = argmax_x  y(x) - lambda * sum_ij |x_ij|

from a seeded noise start, with optional jitter (a random shift before each step) and blur
(a Gaussian smoothing every few steps) as image priors. Each image of the batch climbs its own
target, so the first N filters of a layer are one batched run (`filter_grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcam.core.explanation import Explanation
from mmcam.core.model_state import explaining
from mmcam.core.targets import Target
from mmcam.methods.layer_output import ChannelMean, layer_forward
from mmcam.methods.pixel_space import ReluRule, pixel_explanation
from mmcam.visualize import save_image_grid


def noise_images(
    shape: Sequence[int], scale: float = 0.1, seed: int = 0, device: torch.device | None = None
) -> Tensor:
    """Seeded Gaussian noise `shape` (e.g. `[B, 3, H, W]`) with standard deviation `scale`."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).to(device or "cpu")


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Blur `[B, C, H, W]` with a separable Gaussian of `sigma` pixels (reflected borders)."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    columns = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(padded, rows, groups=channels), columns, groups=channels)


def activation_maximization(
    forward: Callable[..., Any],
    start: Tensor | Sequence[int],
    target: Target,
    *,
    steps: int = 100,
    step_size: float = 0.05,
    l1: float = 1e-4,
    jitter: int = 0,
    blur_sigma: float = 0.0,
    blur_every: int = 4,
    redirect_steps: int = 16,
    seed: int = 0,
    model: nn.Module | None = None,
    forward_args: Sequence[Any] = (),
) -> Explanation:
    """Gradient ascent on the input for `target` (one score per image, each image its own):
    x* = argmax_x y(x) - l1 * sum_ij |x_ij|.

    `start` is the first input `[B, C, H, W]`, or its shape for seeded noise (std 0.1, on the
    model's device). Each step x <- x + step_size * g / mean|g| with g = d(y - l1 sum|x|)/dx,
    the per-image normalised gradient, so `step_size` does not depend on the scale of y.
    `jitter` rolls the input by up to that many pixels (seeded) before each step; `blur_sigma`
    > 0 blurs it every `blur_every` steps. For the first `redirect_steps` steps ReLUs pass back
    the gradient that would wake a dead unit (Lucid's redirected ReLU), so a unit that is zero
    at the start still climbs; afterwards the gradient is the ordinary one. `model` (default:
    `forward` when it is a module) runs in eval mode; its mode is restored.

    Args:
        forward: the callable run as `forward(images, *forward_args)` (usually the model).
        start: the first input `[B, C, H, W]`, or its shape for seeded noise.
        target: one score per image from the output, the quantity climbed.
        steps: the number of ascent steps.
        step_size: the step along the per-image normalised gradient.
        l1: the weight of the L1 penalty on the input.
        jitter: the largest random shift, in pixels, before each step (0: none).
        blur_sigma: the Gaussian blur applied every `blur_every` steps (0: none).
        blur_every: how often the blur is applied.
        redirect_steps: the first steps whose ReLUs pass the gradient that wakes a dead unit.
        seed: the seed of the noise start and of the jitter.
        model: the module run in eval mode when `forward` is not the module itself.
        forward_args: the model's other inputs, passed after the images.

    Returns:
        An `Explanation` whose `raw` are the optimised inputs `[B, C, H, W]` (in the model's
        input space; `display_images` scales them for viewing), `maps` where their energy sits
        (max_c |x| normalised: the L1 penalty keeps only the pixels the target needs) and
        `scores` the target's scores of the optimised inputs (no jitter).

    Raises:
        ValueError: the target does not give one score per image.
    """
    model = model if model is not None else forward if isinstance(forward, nn.Module) else None
    if isinstance(start, Tensor):
        images = start.detach().clone()
    else:
        device = next(model.parameters()).device if model is not None else None
        images = noise_images(start, seed=seed, device=device)
    generator = torch.Generator().manual_seed(seed)
    state = explaining(model, images.device) if model is not None else nullcontext()
    with state, torch.enable_grad():
        for step in range(steps):
            images.requires_grad_(True)
            shifted = images
            if jitter > 0:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
                shifted = torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
            with ReluRule("redirected") if step < redirect_steps else nullcontext():
                scores = target(forward(shifted, *forward_args))
            if scores.dim() != 1 or scores.shape[0] != images.shape[0]:
                raise ValueError(
                    f"the target gave scores of shape {tuple(scores.shape)} for "
                    f"{images.shape[0]} inputs; give one score per input"
                )
            objective = scores.sum() - l1 * images.abs().sum()
            (gradient,) = torch.autograd.grad(objective, images)
            scale = gradient.abs().flatten(1).mean(dim=1).clamp(min=1e-12)  # [B]
            with torch.no_grad():
                images = images.detach() + step_size * gradient / scale[:, None, None, None]
                if blur_sigma > 0 and (step + 1) % blur_every == 0:
                    images = gaussian_blur(images, blur_sigma)
        with torch.no_grad():
            scores = target(forward(images, *forward_args))
    return pixel_explanation(images.detach(), scores, "activation_maximization")


def display_images(images: Tensor) -> Tensor:
    """Optimised inputs `[B, C, H, W]` scaled per image to [0, 1] for viewing."""
    flat = images.detach().flatten(1)
    low = flat.amin(dim=1)[:, None, None, None]
    span = (flat.amax(dim=1)[:, None, None, None] - low).clamp(min=1e-12)
    return (images.detach() - low) / span


def filter_grid(
    model: nn.Module,
    layer: str | nn.Module,
    path: str | Path,
    count: int = 16,
    size: Sequence[int] = (64, 64),
    *,
    forward: Callable[..., Any] | None = None,
    columns: int = 8,
    **ascent: Any,
) -> tuple[Path, Explanation]:
    """Maximise the mean activation of channels 0 .. count-1 of `layer` (one batched run, one
    image per channel) and save them as a grid figure at `path`. `ascent` goes to
    `activation_maximization` (steps, step_size, l1, jitter, blur_sigma, seed).

    Args:
        model: the model that contains `layer`.
        layer: the layer whose channels are maximised (name or module).
        path: where the figure is written.
        count: how many channels, from channel 0.
        size: the (H, W) of each optimised image.
        forward: how to run the model up to the layer; None: the model itself.
        columns: images per row of the figure.
        **ascent: keyword arguments of `activation_maximization`.

    Returns:
        The figure's path and the `Explanation` (labels "channel k", scores the channels' mean
        activations).

    Raises:
        ValueError: an unknown layer name.
    """
    channels = list(range(count))
    explanation = activation_maximization(
        layer_forward(model, layer, forward),
        (count, 3, *size),
        ChannelMean(channels),
        model=model,
        **ascent,
    )
    explanation.labels = [f"channel {k}" for k in channels]
    titles = [f"{k}: {s:.2f}" for k, s in zip(channels, explanation.scores.tolist(), strict=True)]
    return save_image_grid(display_images(explanation.raw), titles, path, columns), explanation
