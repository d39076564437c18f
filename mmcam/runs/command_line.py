"""What a dataset command does with its flags: its parsed options turned into `RunOptions`, and
a finished run printed (the flags themselves: `mmcam.cli.dataset_options`; how a command ends:
`mmcam.cli.exit_status`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from mmcam.boxes.settings import box_settings, default_method
from mmcam.runs.method_flags import method_options
from mmcam.runs.models import ExplainedModel
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import report_text, summary
from mmcam.runs.run import RunResult


def optional_file(given: str | None, default: Path, off: bool) -> str | Path | None:
    """An explicit file, else `default` when it exists; None when switched off."""
    if off:
        return None
    if given is not None:
        return given
    return default if default.is_file() else None


def print_run(result: RunResult | None, out: str | Path) -> dict | None:
    """Print a finished run's report and its JSON line (returned); None on torchrun ranks
    other than 0, which leave merging and reporting to rank 0."""
    if result is None:
        return None
    print(report_text(result.metrics), end="")
    print(f"outputs in {out}")
    line = {**summary(result.metrics), **result.timing}
    print(json.dumps(line))
    return line


def fraction_list(text: str) -> tuple[float, ...]:
    """'0.2,0.5,0.8' -> (0.2, 0.5, 0.8); 'none' -> ()."""
    if text.strip().lower() in ("none", ""):
        return ()
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected shares like 0.2,0.5,0.8, got {text!r}"
        ) from None
    if not all(0 < share < 1 for share in shares):
        raise argparse.ArgumentTypeError(f"shares must lie strictly between 0 and 1: {text!r}")
    return shares


def chosen_method(args: Any, model: ExplainedModel) -> ExplainedModel:
    """Fill in `args.method` when the command line named none (the table's default method) and
    return `model` at the layer chosen for that method and architecture, unless `--layer` named
    one; any other method is read at the layer the model was loaded with."""
    default = default_method()
    args.method = args.method or default.method
    layer = None if args.layer else default.layer_for(model.model, args.method)
    return dataclasses.replace(model, layer=layer) if layer else model


def options_from_arguments(args: Any) -> RunOptions:
    """The `RunOptions` of parsed `add_run_arguments` arguments (and `--max-length`,
    `--beam-size`, `--top-k` when the script has them)."""
    chosen = box_settings(args.method)  # the method's row, where the command line is silent
    threshold = chosen.threshold if args.box_threshold is None else args.box_threshold
    return RunOptions.with_boxes(
        dataclasses.replace(chosen, threshold=threshold, boxes=args.boxes or chosen.boxes),
        method=args.method,
        smooth=args.smooth,
        pointing_tolerance=args.pointing_tolerance,
        deletion_steps=args.deletion_steps,
        tie_orders=args.tie_orders,
        road_fractions=args.road_fractions,
        max_length=getattr(args, "max_length", 20),
        beam_size=getattr(args, "beam_size", 1),
        top_k=getattr(args, "top_k", 3),
        method_options=method_options(args),
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        save_figures=args.save_figures,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
