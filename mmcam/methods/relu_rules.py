"""The modified ReLU backward rules of the pixel-space methods (guided backpropagation,
deconvnet, Lucid's redirected ReLU), installed without touching the model.

A `TorchFunctionMode` sees every ReLU-family call made during the forward pass — `nn.ReLU` /
`nn.ReLU6` / `nn.LeakyReLU` modules (in place or not) and functional `torch.relu`, `F.relu`,
`relu_`, `x.relu()`, `F.relu6`, `F.hardtanh(min_val=0)`, `F.leaky_relu` alike — and runs it
through an autograd Function with the same forward output and the modified backward. No hook, no
module swap, nothing to undo but leaving the `with` block, so the model is exactly as before on
every exit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["RULES", "ReluRule", "relu_rule"]

# func -> (slope on the negative side or None for a clip, name); args decoded in `_decode`.
_RELUS = {F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
_CLIPPED = {F.relu6, F.hardtanh, F.hardtanh_}
_LEAKY = {F.leaky_relu, F.leaky_relu_}
_OTHER_ACTIVATIONS = {
    F.gelu: "gelu", F.silu: "silu", F.elu: "elu", F.selu: "selu", F.celu: "celu",
    F.mish: "mish", F.hardswish: "hardswish", F.softplus: "softplus", F.prelu: "prelu",
    torch.sigmoid: "sigmoid", torch.tanh: "tanh", Tensor.sigmoid: "sigmoid",
    Tensor.tanh: "tanh",
}  # fmt: skip


RULES = ("guided", "deconvnet", "redirected")


class _RuleActivation(torch.autograd.Function):
    """Forward: the original activation call, unchanged. Backward: the guided or deconvnet rule.

    guided:     dR/dx = f'(x) * max(dR/dy, 0)   (Springenberg et al. 2015)
    deconvnet:  dR/dx = max(dR/dy, 0)           (Zeiler & Fergus 2014)
    redirected: dR/dx = dR/dy where the unit is active, else only the part that would wake it
                (max(dR/dy, 0) below, min(dR/dy, 0) above a clip): Lucid's "redirected ReLU",
                so gradient ascent from a start where the unit is dead still moves.
    f'(x) is read from the output y (same sign as x), so in-place calls work too.
    """

    @staticmethod
    def forward(ctx, x, call, rule, low, high, slope):  # noqa: ANN001 (autograd signature)
        out = call()
        if out is x:  # in place
            ctx.mark_dirty(x)
        ctx.rule, ctx.low, ctx.high, ctx.slope = rule, low, high, slope
        if rule != "deconvnet":
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        if ctx.rule == "deconvnet":
            return grad.clamp(min=0), None, None, None, None, None
        (out,) = ctx.saved_tensors
        if ctx.rule == "guided" and not ctx.slope:  # two passes, as Captum's hook + ReLU backward
            passed = torch.ops.aten.threshold_backward(grad, out, ctx.low).clamp_(min=0)
            if ctx.high is not None:
                passed = torch.where(out < ctx.high, passed, torch.zeros((), dtype=grad.dtype))
            return passed, None, None, None, None, None
        positive = grad.clamp(min=0)
        if ctx.rule == "redirected":
            if ctx.slope:  # leaky: never dead, the ordinary gradient
                return grad * torch.where(out > 0, 1.0, ctx.slope).to(grad.dtype), *[None] * 5
            passed = torch.where(out > ctx.low, grad, positive)
            if ctx.high is not None:
                passed = torch.where(out < ctx.high, passed, grad.clamp(max=0))
            return passed, None, None, None, None, None
        # guided, leaky: slope on the negative side
        passed = positive * torch.where(out > 0, 1.0, ctx.slope).to(grad.dtype)
        return passed, None, None, None, None, None


class ReluRule(TorchFunctionMode):
    """While active, every ReLU-family call backpropagates by `rule` ("guided", "deconvnet" or
    "redirected").

    Counts the calls it changed (`applied`) and names the other activations it saw (`others`).
    """

    def __init__(self, rule: str) -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; choose one of {', '.join(RULES)}")
        self.rule = rule
        self.applied = 0
        self.others: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        decoded = _decode(func, args, kwargs)
        if decoded is None:
            if func in _OTHER_ACTIVATIONS:
                self.others.add(_OTHER_ACTIVATIONS[func])
            return func(*args, **kwargs)
        x, low, high, slope = decoded
        if not (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad):
            return func(*args, **kwargs)
        self.applied += 1
        return _RuleActivation.apply(x, lambda: func(*args, **kwargs), self.rule, low, high, slope)


def _decode(
    func: Any, args: tuple, kwargs: dict
) -> tuple[Tensor, float, float | None, float] | None:
    """(input, low, high, slope) of a ReLU-family call, or None when the rule does not apply."""
    if func not in _RELUS and func not in _CLIPPED and func not in _LEAKY:
        return None
    names = ("input", "min_val", "max_val") if func in _CLIPPED else ("input", "negative_slope")
    given = dict(zip(names, args, strict=False)) | kwargs  # F.relu(input=x) spells it by name
    x = given.get("input", given.get("self"))
    if func in _RELUS:
        return x, 0.0, None, 0.0
    if func is F.relu6:
        return x, 0.0, 6.0, 0.0
    if func in _CLIPPED:
        low, high = float(given.get("min_val", -1.0)), float(given.get("max_val", 1.0))
        return (x, low, high, 0.0) if low == 0.0 else None  # hardtanh(-1, 1) is no ReLU
    slope = float(given.get("negative_slope", 0.01))
    return (x, 0.0, None, slope) if slope >= 0 else None


@contextmanager
def relu_rule(rule: str) -> Iterator[ReluRule]:
    """Run the forward inside this block to backpropagate by `rule`; warns when nothing changed."""
    mode = ReluRule(rule)
    with mode:
        yield mode
    if mode.applied == 0:
        seen = f" (activations seen: {', '.join(sorted(mode.others))})" if mode.others else ""
        warnings.warn(
            f"{rule} backprop: the forward pass called no ReLU, ReLU6, clipped ReLU or "
            f"LeakyReLU{seen}, so the rule changed nothing and the result is the plain input "
            "gradient",
            stacklevel=3,
        )
