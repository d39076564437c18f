"""A layer's output as the thing explained: a forward pass that stops at one layer, and targets
that read a channel or a unit of it (for activation maximisation and filter figures)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcam.core.tap import find_layer
from mmcam.core.targets import ClassLogit


class LayerReached(Exception):
    """Raised by the hook to stop the pass once the layer has run: nothing above it is computed."""


def layer_forward(
    model: nn.Module, layer: str | nn.Module, forward: Callable[..., Any] | None = None
) -> Callable[..., Tensor]:
    """A forward `images -> output of layer` (graph kept, so it can be differentiated).

    `forward(images, *args)` runs the model (default: `model` itself); it is stopped as soon as
    the layer has run. The hook lives only during each call."""
    name, module = find_layer(model, layer)
    run = forward if forward is not None else model

    def layer_output(images: Tensor, *args: Any) -> Tensor:
        seen: list[Tensor] = []

        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen.append(output[0] if isinstance(output, tuple | list) else output)
            raise LayerReached

        handle = module.register_forward_hook(record)
        try:
            run(images, *args)
        except LayerReached:
            pass
        finally:
            handle.remove()
        if not seen:
            raise RuntimeError(f"layer {name!r} did not run in the forward pass")
        return seen[0]

    return layer_output


class ChannelMean:
    """The mean activation of one channel per image, `output[b, k_b].mean()` of a `[B, K, h, w]`
    (or `[B, K]`) layer output; `channels` is one int for all or one per image."""

    def __init__(self, channels: int | Sequence[int] | Tensor) -> None:
        self.channels = channels

    def select(self, rows: Tensor) -> ChannelMean:
        """This target for a batch whose row r is a copy of image `rows[r]`."""
        return ChannelMean(_rows_of(self.channels, rows))

    def __call__(self, output: Tensor) -> Tensor:
        picked = ClassLogit(self.channels).indices(output.shape[0], output.device)
        rows = output[torch.arange(output.shape[0], device=output.device), picked]  # [B, ...]
        return rows.flatten(1).mean(dim=1) if rows.dim() > 1 else rows


class UnitActivation:
    """One unit: `output[b, k, y, x]` of a `[B, K, h, w]` layer output; (y, x) default to the
    centre of the grid. `channels` is one int for all or one per image."""

    def __init__(
        self, channels: int | Sequence[int] | Tensor, y: int | None = None, x: int | None = None
    ) -> None:
        self.channels, self.y, self.x = channels, y, x

    def select(self, rows: Tensor) -> UnitActivation:
        """This target for a batch whose row r is a copy of image `rows[r]`."""
        return UnitActivation(_rows_of(self.channels, rows), self.y, self.x)

    def __call__(self, output: Tensor) -> Tensor:
        if output.dim() != 4:
            raise ValueError(f"UnitActivation expects [B, K, h, w], got {tuple(output.shape)}")
        picked = ClassLogit(self.channels).indices(output.shape[0], output.device)
        y = output.shape[2] // 2 if self.y is None else self.y
        x = output.shape[3] // 2 if self.x is None else self.x
        return output[torch.arange(output.shape[0], device=output.device), picked, y, x]


def _rows_of(channels: int | Sequence[int] | Tensor, rows: Tensor) -> int | Tensor:
    if isinstance(channels, int):
        return channels
    return torch.as_tensor(channels, dtype=torch.long, device=rows.device).flatten()[rows]
