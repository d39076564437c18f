"""Hook one layer for the length of a `with` block and record its activations A.

Grad-CAM needs only dY/dA, so the tap also cuts the autograd graph below the layer: the
forward runs with gradients off until the tapped layer fires, whose output is replaced by a
fresh leaf tensor that requires grad. Nothing below A is recorded or differentiated, and no
parameter ever receives a gradient.

With `replicas=R` the leaf is the layer's output repeated R times along the batch (item b's
copies are rows b*R .. b*R+R-1), so R different targets per item — the words of a caption, the
top answers of a question — get their own gradients from one backward pass.

`layer="input"` taps the model's first positional input instead of a layer's output: a model
that takes a precomputed grid of image features (`[B, 2048, 14, 14]`) is explained with respect
to that grid.

`Taps` hooks several layers in one forward pass (LayerCAM's multi-layer fusion): the lowest
cuts the graph as above, the ones above it only record their outputs, and one backward pass
gives every layer's dY/dA.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

Grid = Callable[[Tensor], Tensor]
INPUT = "input"  # the layer name that taps the model's first positional input
Layers = str | nn.Module | Sequence[str | nn.Module]  # one layer, or several from the input up


def layers(layer: Layers) -> list[str | nn.Module]:
    """One layer, or a comma-separated string or list of them, as a list."""
    if isinstance(layer, nn.Module):
        return [layer]
    if isinstance(layer, str):
        return [name.strip() for name in layer.split(",")]
    return list(layer)


def find_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """The (dotted name, module) of `layer` in `model`; an unknown name lists the valid ones.
    `"input"` is the model's first positional input: ("input", model)."""
    modules = dict(model.named_modules())
    if layer == INPUT:
        if INPUT in modules:
            raise ValueError(
                f"{type(model).__name__} has a submodule named 'input', so layer='input' is "
                "ambiguous: pass the submodule itself to tap its output"
            )
        return INPUT, model
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"the given layer {type(layer).__name__} is not a submodule of the model")
    if layer in modules:
        return layer, modules[layer]
    names = [name for name in modules if name]
    closest = difflib.get_close_matches(layer, names, n=len(names), cutoff=0.0)
    raise ValueError(
        f"no layer named {layer!r} in {type(model).__name__}; valid names, closest first: "
        + ", ".join(closest)
    )


class Tap:
    """Context manager that records one layer's output A and makes dY/dA available.

    `to_grid` turns the layer's output into a `[N, K, h, w]` feature grid (for example a
    transformer's patch tokens reshaped to the patch grid); it is applied to A and to dY/dA
    alike. A layer that returns a tuple is tapped at its first element. `cut=False` records the
    output without cutting the graph (a layer above the one that cuts, see `Taps`).

    Use it as `with Tap(model, "layer4") as tap: scores = target(model(images))`, then
    `grad_cam(tap, scores)`. The hook exists only inside the `with` block (also when the model
    raises); parameter gradients and the model's mode are never touched.

    Args:
        model: the model that contains the layer.
        layer: a dotted module name (`"encoder.features"`), the module itself, or `"input"` (the
            model's first positional input).
        replicas: R > 1 repeats the layer's output R times along the batch (each copy explains
            another target, e.g. each word of a caption), from one forward pass.
        to_grid: turns the layer's output (and its gradient) into a `[N, K, h, w]` grid.
        cut: cut the graph at the layer (the layers below run without recording).

    Raises:
        ValueError: an unknown layer name (the message lists the valid ones, closest first), a
            module that is not the model's, `replicas < 1`, or `replicas > 1` with `cut=False`.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module,
        *,
        replicas: int = 1,
        to_grid: Grid | None = None,
        cut: bool = True,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        if not cut and replicas > 1:
            raise ValueError("only the tap that cuts the graph replicates its layer's output")
        self.name, self.module = find_layer(model, layer)
        self.replicas = replicas
        self.to_grid = to_grid
        self.cut = cut
        self.activations: Tensor | None = None  # the leaf: [B*R, ...] as the layer returned it
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._grad_mode = True

    @property
    def taps_input(self) -> bool:
        """The tap records the model's first positional input (`layer="input"`)."""
        return self.name == INPUT

    def __enter__(self) -> Tap:
        self.activations = None
        self._grad_mode = torch.is_grad_enabled()
        torch.set_grad_enabled(self._grad_mode and not self.cut)
        if self.taps_input:
            self._handle = self.module.register_forward_pre_hook(self._record_input)
        else:
            self._handle = self.module.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        torch.set_grad_enabled(self._grad_mode)

    def _record(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        first = output[0] if isinstance(output, tuple | list) else output
        if not isinstance(first, Tensor):
            raise TypeError(f"layer {self.name!r} returned {type(first).__name__}, not a tensor")
        passed_on = self.feed(first)
        if isinstance(output, tuple | list):
            return type(output)([passed_on, *output[1:]])
        return passed_on

    def _record_input(self, module: nn.Module, inputs: tuple) -> tuple:
        if not inputs or not isinstance(inputs[0], Tensor):
            raise TypeError(
                f"layer='input' taps the first positional input of {type(module).__name__}, and "
                "it was called without a tensor there: pass the image (or feature grid) first, "
                "positionally"
            )
        return (self.feed(inputs[0]), *inputs[1:])

    def feed(self, tensor: Tensor) -> Tensor:
        """Record `tensor` as A (repeated `replicas` times along the batch) and return the
        copy the model goes on with. The hooks call it; an explainer whose model is entered
        through a method other than `forward` (a captioner's `encode`) calls it on the input
        when `taps_input`."""
        if self.activations is not None:
            raise RuntimeError(
                f"layer {self.name!r} ran twice in one tapped forward pass; tap a layer that "
                "runs once per pass (or split the pass)"
            )
        if not self.cut:
            if not tensor.requires_grad:
                raise RuntimeError(
                    f"layer {self.name!r} ran before the layer that cuts the graph: list the "
                    "tapped layers from the input up"
                )
            self.activations = tensor  # not a leaf: its gradient flows through the copy passed on
        else:
            leaf = tensor.detach()
            if self.replicas > 1:
                leaf = leaf.repeat_interleave(self.replicas, dim=0)
            leaf.requires_grad_(True)
            self.activations = leaf
            torch.set_grad_enabled(True)
        # A copy goes on, so in-place operations after the layer stay legal.
        return self.activations.clone()

    def grid(self, tensor: Tensor) -> Tensor:
        """`tensor` (A or dY/dA, as the layer returned it) as a `[N, K, h, w]` grid."""
        grid = self.to_grid(tensor) if self.to_grid is not None else tensor
        if grid.dim() != 4:
            raise ValueError(
                f"layer {self.name!r} gives a {grid.dim()}-d tensor {tuple(grid.shape)}; CAM "
                "methods need [N, K, h, w] (pass to_grid= to reshape it)"
            )
        return grid

    def gradients(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """A and dY/dA as `[N, K, h, w]` grids, one row per element of `scores`.

        `scores` holds one scalar per replica row: shape `[B]` when `replicas == 1`, `[B, R]`
        (or `[B*R]`) otherwise. Items must not interact (BatchNorm in eval mode), so the
        gradient of the sum is every score's own gradient.

        Args:
            scores: one scalar per tapped row, computed inside the `with` block.

        Returns:
            A and dY/dA, each `[N, K, h, w]`.

        Raises:
            RuntimeError: the layer did not run inside the `with` block.
            ValueError: not one score per row, scores that do not depend on the layer, or a
                layer output that is not a grid.
        """
        self.check_scores(scores)
        leaf = self.activations
        (grads,) = torch.autograd.grad(scores.sum(), leaf)
        return self.grid(leaf.detach()), self.grid(grads)

    def check_scores(self, scores: Tensor) -> None:
        """Refuse scores that do not match the tapped rows or do not depend on the layer."""
        if self.activations is None:
            raise RuntimeError(
                f"layer {self.name!r} did not run: call the model inside the `with Tap(...)` block"
            )
        leaf = self.activations
        if scores.numel() != leaf.shape[0]:
            raise ValueError(
                f"got {scores.numel()} scores for {leaf.shape[0]} tapped rows "
                f"(batch x replicas={self.replicas}); give exactly one score per row"
            )
        if not scores.requires_grad:
            raise ValueError(
                "scores do not depend on the tapped layer: compute them from the model's "
                "output inside the `with Tap(...)` block"
            )

    def release(self) -> None:
        """Drop the recorded activations so their memory is freed."""
        self.activations = None


class Taps:
    """Several layers tapped in one forward pass, listed from the input up: the first cuts the
    graph (and replicates its output `replicas` times), the others record their outputs, so
    one backward pass gives every layer's A and dY/dA. One layer behaves exactly as `Tap`.

    Args:
        model: the model that contains the layers.
        layers: the layers (names or modules), from the input up.
        replicas: copies of the first layer's output along the batch (see `Tap`).
        to_grid: turns each layer's output into a `[N, K, h, w]` grid.

    Raises:
        ValueError: no layer given, or an unknown layer name.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str | nn.Module],
        *,
        replicas: int = 1,
        to_grid: Grid | None = None,
    ) -> None:
        if not layers:
            raise ValueError("give at least one layer to tap")
        self.taps = [
            Tap(model, layer, replicas=replicas if i == 0 else 1, to_grid=to_grid, cut=i == 0)
            for i, layer in enumerate(layers)
        ]

    def __enter__(self) -> Taps:
        for tap in self.taps:
            tap.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for tap in reversed(self.taps):
            tap.__exit__(*exc_info)

    def gradients(self, scores: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each layer's A and dY/dA as `[N, K, h, w]` grids (see `Tap.gradients`), from one
        backward pass.

        Args:
            scores: one scalar per row of the first layer, computed inside the `with` block.

        Returns:
            Per layer, from the input up, the pair (A, dY/dA); a layer the scores do not
            depend on gets zero gradients.

        Raises:
            RuntimeError: a layer did not run inside the `with` block.
            ValueError: as for `Tap.gradients`.
        """
        first = self.taps[0]
        first.check_scores(scores)
        for tap in self.taps[1:]:
            if tap.activations is None:
                raise RuntimeError(f"layer {tap.name!r} did not run inside the `with` block")
        inputs = [tap.activations for tap in self.taps]
        grads = torch.autograd.grad(scores.sum(), inputs, allow_unused=True)
        return [
            (tap.grid(a.detach()), tap.grid(g if g is not None else torch.zeros_like(a)))
            for tap, a, g in zip(self.taps, inputs, grads, strict=True)
        ]

    def release(self) -> None:
        for tap in self.taps:
            tap.release()
