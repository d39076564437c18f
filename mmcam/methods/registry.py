"""The method registry: one record per method the explainers run, the one place that says which
methods exist.

A record names the method (`id`, spelled the same in the API, the command line, the demo's
values, the records and the metrics keys), says how it is shown (`name`), how it works (`kind`),
what it takes (`options`, a dataclass), which explainers run it (`explainers`), the function
that computes it, and whether it passed the sanity checks on the bundled models. Everything that
offers a choice of methods (explainers, dataset runs and their flags, the demo, the sanity
check, box choice) reads this table at the moment it offers it, so a method registered here —
by `register`, from any module — is offered everywhere with no other edit.

Kinds:

- "gradient": a CAM formula on a layer's activations A and gradients G = dY/dA, `function(A, G)`
  -> the signed map `[N, h, w]` (its ReLU is shown). Raw maps `[B, (T,) h, w]`.
- "rule": an input gradient through a modified ReLU backward rule; `function` is the rule's
  name ("guided", "deconvnet"), `times` an optional gradient method whose upsampled map
  multiplies it (guided Grad-CAM). Raw maps are the signed attributions `[B, (T,) 3, H, W]`.
- "perturbation": no gradient, any model; `function(forward, images, target, **kwargs)` sweeps
  perturbed copies. Raw maps `[B, (T,) H, W]` at the input's pixels.
- "attention": read from a transformer's attention probabilities (and their gradients);
  `function(stack)` maps an `attention.AttentionStack` to the relevance of the last layer's keys
  `[N, Tk]`; the explainer keeps the patches as `[B, (T,) h, w]` raw maps. A method that reads
  no gradient gives every target the same map and says so (`target_independent`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from mmcam.methods import attention, formulas
from mmcam.methods.perturbation import ChunkSize, occlusion
from mmcam.methods.rise import rise

__all__ = [
    "ATTENTION",
    "KINDS",
    "METHODS",
    "Method",
    "OcclusionOptions",
    "RiseOptions",
    "get",
    "ids",
    "methods",
    "register",
    "resolve",
    "unregister",
]

Kind = Literal["gradient", "rule", "perturbation", "attention"]
KINDS: tuple[Kind, ...] = ("gradient", "rule", "perturbation", "attention")
ATTENTION: Kind = "attention"  # the kind, spelled like the raw-attention method: compare by name

# The explainers, by the id each declares (`Explainer.explainer_id`): the CNN caption and VQA
# explainers (also what the Hugging Face adapters run on patch-token grids), and the
# cross-attention explainers of encoder-decoder transformers.
CNN = frozenset({"captions", "vqa"})
PATCH_TOKENS = frozenset({"hf_captions", "hf_vqa"})
CROSS_ATTENTION = frozenset({"cross_attention"})
# The explainers of a whole attention stack (every layer's attention and gradients): an
# encoder-decoder captioner (BLIP) and a single-stream VQA model (ViLT).
ATTENTION_STACK = frozenset({"attention_captions", "attention_vqa"})


@dataclass(frozen=True)
class OcclusionOptions:
    """Occlusion (Zeiler & Fergus 2014): a `window`-pixel square slid by `stride` (None: half the
    window), `sweep_batch` perturbed copies per forward (None: the deterministic default)."""

    window: int = 16
    stride: int | None = None
    sweep_batch: ChunkSize = None

    def kwargs(self) -> dict[str, Any]:
        return {"window": self.window, "stride": self.stride, "batch_size": self.sweep_batch}


@dataclass(frozen=True)
class RiseOptions:
    """RISE (Petsiuk et al. 2018): `n_masks` random masks of `cell`-pixel cells (None: a 7 x 7
    grid), each cell kept with `keep_probability`."""

    n_masks: int = 2000
    cell: int | None = None
    keep_probability: float = 0.5
    sweep_batch: ChunkSize = None

    def kwargs(self) -> dict[str, Any]:
        return {
            "n_masks": self.n_masks, "cell": self.cell, "p": self.keep_probability,
            "batch_size": self.sweep_batch,
        }  # fmt: skip


@dataclass(frozen=True)
class Method:
    """One method: see the module's docstring for what `kind` and `function` mean."""

    id: str
    name: str
    kind: Kind
    function: Callable[..., Any] | str
    explainers: frozenset[str]
    options: type | None = None  # a dataclass with `kwargs()`: the function's keyword arguments
    times: str | None = None  # rule methods: the gradient method that weights the rule's map
    linear: bool = True  # gradient methods: the map of a sum of scores is the sum of the maps
    sanity: bool | None = None  # passed the sanity checks (README); None: not checked
    evidence: bool = True  # the map shows evidence for the target (counterfactual: against it)
    target_independent: bool = False  # the same map for every target (rollout: no gradient)
    aliases: tuple[str, ...] = ()  # former ids, still accepted with a DeprecationWarning
    summary: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} of {self.id!r}: choose one of {KINDS}")

    def option_fields(self) -> tuple[str, ...]:
        """The names of the method's options (empty for a method without options)."""
        return tuple(f.name for f in fields(self.options)) if self.options else ()

    def make_options(self, given: Mapping[str, Any] | None = None) -> Any:
        """The options dataclass from `given` (names of its fields); a clear error for a method
        without options given some, or for a name it does not take."""
        given = dict(given or {})
        if self.options is None:
            if given:
                raise ValueError(
                    f"options ({', '.join(given)}) given for {self.id}, which takes none"
                )
            return None
        unknown = set(given) - set(self.option_fields())
        if unknown:
            raise ValueError(
                f"{self.id} takes the options {', '.join(self.option_fields())}, "
                f"not {', '.join(sorted(unknown))}"
            )
        return self.options(**given)

    def stamp(self, options: Any) -> dict[str, Any]:
        """The options as plain values, for a run's fingerprint."""
        return asdict(options) if options is not None else {}


METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add `method` to the table (every offer of methods then includes it); `replace=True` to
    change a record already there."""
    if method.id in METHODS and not replace:
        raise ValueError(
            f"a method {method.id!r} is registered already (replace=True to change it)"
        )
    METHODS[method.id] = method
    for alias in method.aliases:
        _ALIASES[alias] = method.id
    return method


def unregister(method_id: str) -> None:
    """Remove a method (and its aliases) from the table."""
    removed = METHODS.pop(method_id)
    for alias in removed.aliases:
        _ALIASES.pop(alias, None)


def resolve(method_id: str) -> str:
    """The current id of `method_id`: itself, or the id a former spelling now has (with a
    DeprecationWarning naming it); unknown ids are returned as given (`get` refuses them)."""
    if method_id in _ALIASES and method_id not in METHODS:
        new = _ALIASES[method_id]
        warnings.warn(
            f"method {method_id!r} is now called {new!r}; the old name goes in a later release",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    return method_id


def get(method_id: str, explainer: str | None = None) -> Method:
    """The record of `method_id` (a former id is accepted with a warning), or a clear error
    naming the methods there are (those `explainer` runs, when given)."""
    record = METHODS.get(resolve(method_id))
    offered = ids(explainer=explainer)
    if record is None:
        raise ValueError(f"unknown method {method_id!r}; choose one of {', '.join(offered)}")
    if explainer is not None and explainer not in record.explainers:
        raise ValueError(
            f"{record.name} ({record.id}) is not offered for {explainer} models; "
            f"choose one of {', '.join(offered)}"
        )
    return record


def methods(
    *, kind: str | Iterable[str] | None = None, explainer: str | None = None
) -> list[Method]:
    """The registered methods, in registration order, of `kind` (one or several) and run by
    `explainer`, when given."""
    kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
    return [
        record
        for record in METHODS.values()
        if (kinds is None or record.kind in kinds)
        and (explainer is None or explainer in record.explainers)
    ]


def ids(*, kind: str | Iterable[str] | None = None, explainer: str | None = None) -> list[str]:
    """The ids of `methods(kind=..., explainer=...)`."""
    return [record.id for record in methods(kind=kind, explainer=explainer)]


_GRADIENT_EXPLAINERS = CNN | PATCH_TOKENS
for _record in (
    Method("gradcam", "Grad-CAM", "gradient", formulas.gradcam, _GRADIENT_EXPLAINERS,
           sanity=True, summary="channel weights = grid-averaged gradients"),
    Method("gradcam++", "Grad-CAM++", "gradient", formulas.gradcam_plus_plus,
           _GRADIENT_EXPLAINERS, sanity=False, summary="higher-order channel weights"),
    Method("counterfactual", "Counterfactual", "gradient", formulas.counterfactual,
           _GRADIENT_EXPLAINERS, evidence=False, summary="Grad-CAM of the negated score"),
    Method("hirescam", "HiResCAM", "gradient", formulas.hirescam, _GRADIENT_EXPLAINERS,
           sanity=True, summary="element-wise gradient x activation"),
    Method("layercam", "LayerCAM", "gradient", formulas.layercam, _GRADIENT_EXPLAINERS,
           linear=False, sanity=False, summary="positive gradients per cell"),
    Method("guided_backprop", "Guided backprop", "rule", "guided", CNN, sanity=False,
           summary="input gradient, ReLUs pass positive gradients at positive inputs"),
    Method("deconvnet", "Deconvnet", "rule", "deconvnet", CNN, sanity=True,
           summary="input gradient, ReLUs pass positive gradients"),
    Method("guided_gradcam", "Guided Grad-CAM", "rule", "guided", CNN, times="gradcam",
           sanity=True, aliases=("guided_grad_cam",),
           summary="guided backprop x the upsampled Grad-CAM map"),
    Method("occlusion", "Occlusion", "perturbation", occlusion, CNN | PATCH_TOKENS,
           options=OcclusionOptions, sanity=True, summary="score drop under a sliding patch"),
    Method("rise", "RISE", "perturbation", rise, CNN | PATCH_TOKENS, options=RiseOptions,
           summary="score-weighted random masks"),
    Method("attention", "Raw attention", "attention", attention.raw_attention, ATTENTION_STACK,
           sanity=False, summary="the last layer's head-averaged attention at the target's row"),
    Method("rollout", "Attention rollout", "attention", attention.rollout, ATTENTION_STACK,
           target_independent=True, sanity=False,
           summary="residual-augmented attention multiplied through the layers (any target)"),
    Method("attention_gradcam", "Attention Grad-CAM", "attention", attention.attention_gradcam,
           CROSS_ATTENTION | ATTENTION_STACK, aliases=("cross-attention",), sanity=True,
           summary="gradient-weighted attention to the patches at one layer"),
    Method("relevance", "Relevance", "attention", attention.relevance, ATTENTION_STACK,
           sanity=False,
           summary="gradient-weighted attention accumulated through the layers (Chefer 2021)"),
):  # fmt: skip
    register(_record)
del _record
