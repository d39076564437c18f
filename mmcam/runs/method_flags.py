"""The dataset scripts' `--method` and method-option flags, read from the method registry when
the parser is built: `--method` offers every method a caption and a VQA run can use, and each
field of a method's options dataclass becomes a flag (`n_masks` -> `--masks`, `keep_probability`
-> `--keep-probability`, ...), so a method registered anywhere is offered with its options."""

from __future__ import annotations

import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from mmcam.methods import registry

__all__ = ["add_method_arguments", "dataset_methods", "method_options"]

# The explainers a dataset run uses, per task: the explained layer's (any model) and the
# attention stack's (a transformer's attention methods: `ExplainedModel.caption_explainer`).
TASK_EXPLAINERS = (
    frozenset({"captions", "attention_captions"}),
    frozenset({"vqa", "attention_vqa"}),
)

# The wording of the flags the bundled methods' options have had since they were added (flag,
# help, metavar); an option not named here gets `--its-name` and a help made from its method.
FLAG_WORDING = {
    "window": ("--window", "occlusion: window side in model-input pixels", None),
    "stride": ("--stride", "occlusion: stride in model-input pixels (default: window / 2)", None),
    "n_masks": ("--masks", "RISE: number of random masks, one forward pass each", None),
    "cell": (
        "--cell",
        "RISE: mask cell side in model-input pixels (default: a 7 x 7 grid, as the paper)",
        None,
    ),
    "keep_probability": ("--keep-probability", "RISE: probability a cell is kept", None),
    "sweep_batch": (
        "--sweep-batch",
        "occlusion / RISE: perturbed copies per forward pass; a restart must use the same "
        "value (default: 32, fewer when they pass 64 MiB: fixed by the image size, never by a "
        "timing, so a rerun writes the same bits on a busy machine and an idle one)",
        "N",
    ),
}


def dataset_methods() -> list[registry.Method]:
    """The methods a dataset run of either task offers (to some model: the attention methods to
    transformers), in registration order."""
    return [m for m in registry.methods() if all(m.explainers & task for task in TASK_EXPLAINERS)]


def _method_help() -> str:
    def named(kind: str) -> str:
        return " / ".join(m.id for m in dataset_methods() if m.kind == kind)

    return (
        f"how maps are made: a CAM method at --layer, {named('rule')} in pixel space, or the "
        f"perturbation methods {named('perturbation')} (every word or top answer from one sweep "
        f"of perturbed copies; any model), or for a transformer (--hf: BLIP captioning, ViLT) "
        f"the attention methods {named('attention')} over its whole attention stack "
        "(default: models/box_settings.json's, chosen on val "
        "among the methods that pass the sanity checks, at the layer chosen there for the "
        "bundled architectures: hirescam at encoder.stem)"
    )


def _option_type(options: type, name: str) -> Any:
    """The argparse type of an options field: the first of int, float, str its type allows."""
    hint = typing.get_type_hints(options)[name]
    allowed = typing.get_args(hint) or (hint,)
    return next((kind for kind in (int, float, str) if kind in allowed), str)


def add_method_arguments(group: Any) -> None:
    """`--method` and a flag per method option (default None: the method's own default)."""
    offered = dataset_methods()
    group.add_argument("--method", choices=[m.id for m in offered], help=_method_help())
    for method, field in _option_fields(offered):
        flag, text, metavar = FLAG_WORDING.get(
            field.name, (f"--{field.name.replace('_', '-')}", f"{method.id}: {field.name}", None)
        )
        if field.default not in (MISSING, None) and "(default" not in text:
            text += f" (default: {field.default})"
        group.add_argument(
            flag, dest=field.name, type=_option_type(method.options, field.name),
            metavar=metavar or flag.removeprefix("--").replace("-", "_").upper(), help=text,
        )  # fmt: skip


def _option_fields(offered: list[registry.Method]) -> list[tuple[registry.Method, Field]]:
    """One (first method, field) per option name: each method's own options in registration
    order, then the options several methods share (one flag each, e.g. sweep_batch)."""
    first: dict[str, tuple[registry.Method, Field]] = {}
    takers: dict[str, int] = {}
    for method in offered:
        for field in fields(method.options) if method.options else ():
            first.setdefault(field.name, (method, field))
            takers[field.name] = takers.get(field.name, 0) + 1
    return sorted(first.values(), key=lambda pair: takers[pair[1].name] > 1)


def method_options(args: Any) -> dict[str, Any]:
    """The options of `args.method` the command line gave (the others keep their defaults)."""
    method = registry.get(args.method)
    given = {name: getattr(args, name, None) for name in method.option_fields()}
    return {name: value for name, value in given.items() if value is not None}
