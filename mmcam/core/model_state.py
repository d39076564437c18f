"""The state a model is explained in, restored on every exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn


@contextmanager
def explaining(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode (dropout off, BatchNorm on running statistics, so batch rows do not interact),
    and on CUDA no cuDNN: its RNN kernels refuse to backpropagate in eval mode (Captum #564),
    so LSTMs run on PyTorch's native kernels, which do. Every submodule's previous mode is
    restored (a model in training mode with a frozen, eval-mode part comes back so)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        no_cudnn = torch.backends.cudnn.flags(enabled=False)
        with no_cudnn if device.type == "cuda" else nullcontext():
            yield
    finally:
        for module, training in modes:
            module.training = training
