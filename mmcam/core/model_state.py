"""The state a model is explained in, restored exactly on every exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def explaining(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Explain `model` in eval mode (dropout off, BatchNorm on its running statistics, so batch
    rows do not interact) with every parameter frozen (`requires_grad=False`: no parameter
    gradient is recorded, only the explained inputs' and activations').

    On exit, even on error, each module gets back its own `training` flag and each parameter its
    own `requires_grad`: a model whose parts were in different modes (a training-mode wrapper
    around an `eval()` backbone, a fine-tuned model with frozen BatchNorm) comes back as it went
    in, not switched wholesale to one mode.

    On CUDA, cuDNN is switched off only while a recurrent module (`nn.RNN`, `nn.LSTM`, `nn.GRU`)
    runs: cuDNN's RNN kernels refuse to backpropagate in eval mode (Captum #564), so those run on
    PyTorch's native kernels, which do, and every convolution keeps cuDNN."""
    modes = [(module, module.training) for module in model.modules()]
    frozen = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    handles = _native_recurrent_kernels(model) if device.type == "cuda" else []
    cudnn = torch.backends.cudnn.enabled
    try:
        model.eval()
        for parameter, _ in frozen:
            parameter.requires_grad_(False)
        yield
    finally:
        for handle in handles:
            handle.remove()
        torch.backends.cudnn.enabled = cudnn  # also when a recurrent forward raised midway
        for module, training in modes:
            module.training = training
        for parameter, requires_grad in frozen:
            parameter.requires_grad_(requires_grad)


def _native_recurrent_kernels(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that switch cuDNN off for the forward of each recurrent module of `model` and back
    to what it was afterwards (removed by the caller)."""
    saved: list[bool] = []

    def before(module: nn.Module, inputs: object) -> None:
        saved.append(torch.backends.cudnn.enabled)
        torch.backends.cudnn.enabled = False

    def after(module: nn.Module, inputs: object, output: object) -> None:
        torch.backends.cudnn.enabled = saved.pop()

    handles = []
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
    return handles
