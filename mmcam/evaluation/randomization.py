"""Model-parameter randomisation (Adebayo et al., NeurIPS 2018): copies of a model with some of
its layers re-initialised, for checking whether a saliency method's maps depend on what the
model learnt.

- cascading: re-initialise from the output down, one more layer at each step (the layers above
  stay randomised), until the whole model is random;
- independent: re-initialise one layer at a time, every other layer keeps its trained weights.

A layer is a module name; re-initialising it calls `reset_parameters()` on every module under it
that owns parameters, each under `torch.manual_seed(seed)` (as Quantus's `MPRT` does with its
`seed + 1`), inside `torch.random.fork_rng` so the caller's random state is left alone. All of
it happens on a deep copy: the model handed in is never touched.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

ORDERS = ("cascading", "independent")


def parameter_layers(model: nn.Module, run: Callable[[nn.Module], Any]) -> list[str]:
    """The modules that own parameters themselves, in the order `run(model)` first calls them
    (input to output). Modules whose forward never runs are left out with a warning naming
    them: they change no output unless their weights are read directly (tied weights), and
    then their place in the order is unknown, so name the layers instead."""
    owners = {
        name: module
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    }
    order: list[str] = []
    names = {id(module): name for name, module in owners.items()}

    def record(module: nn.Module, _inputs: Any) -> None:
        name = names[id(module)]
        if name not in order:
            order.append(name)

    handles = [module.register_forward_pre_hook(record) for module in owners.values()]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in owners if name not in order]
    if missing:
        warnings.warn(
            f"modules {missing} own parameters but did not run in the forward pass; they are "
            "not randomised (name the layers if their weights are used another way)",
            stacklevel=2,
        )
    return order


def _resettable(model: nn.Module, layer: str) -> list[nn.Module]:
    """The modules under `layer` that own parameters; each must have `reset_parameters`."""
    try:
        root = model.get_submodule(layer)
    except AttributeError as error:
        raise ValueError(f"no layer {layer!r} in {type(model).__name__}") from error
    owners = [m for m in root.modules() if any(True for _ in m.parameters(recurse=False))]
    if not owners:
        raise ValueError(f"layer {layer!r} owns no parameters: nothing to randomise")
    lacking = [type(m).__name__ for m in owners if not hasattr(m, "reset_parameters")]
    if lacking:
        raise ValueError(
            f"layer {layer!r} holds modules without reset_parameters() ({', '.join(lacking)}), "
            "so it cannot be re-initialised as it was built; name a layer around them instead"
        )
    return owners


def resettable(model: nn.Module, layer: str) -> bool:
    """Whether every parameter-owning module under `layer` can be re-initialised as it was
    built (has `reset_parameters`)."""
    try:
        _resettable(model, layer)
    except ValueError:
        return False
    return True


def draws_weights(model: nn.Module, layer: str) -> bool:
    """Whether re-initialising `layer` draws random weights: some module under it owns a weight
    matrix or kernel (2 or more dimensions). A normalisation layer's reset is not random (ones
    and zeros), so randomising it alone says little about a method."""
    return any(p.dim() >= 2 for m in _resettable(model, layer) for p in m.parameters(False))


def reinitialize(model: nn.Module, layer: str, seed: int) -> None:
    """Re-initialise, in place, every parameter-owning module under `layer` of `model` (a copy)
    with its own `reset_parameters()`, each under `torch.manual_seed(seed)`."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for module in _resettable(model, layer):
            torch.manual_seed(seed)
            module.reset_parameters()


def randomized_models(
    model: nn.Module, layers: Sequence[str], order: str, seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """(layer, model copy) per step: `layers` (input to output) are re-initialised from the
    last one down, cumulatively ("cascading") or one at a time ("independent").

    The copies keep the model's training / eval modes. The same copy is updated in place from
    step to step, so use each one before asking for the next."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    if not layers:
        raise ValueError("no layers to randomise")
    for layer in layers:
        _resettable(model, layer)  # refuse a bad name before any work is done
    randomized = copy.deepcopy(model)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    for layer in reversed(layers):
        if order == "independent":
            randomized.load_state_dict(trained)
        reinitialize(randomized, layer, seed)
        yield layer, randomized
