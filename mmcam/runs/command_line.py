"""The command-line options the dataset scripts share, how a finished run is printed, and how
a refusal ends a command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mmcam.boxes.settings import box_settings, default_method
from mmcam.data.files import Refusal
from mmcam.runs.method_flags import add_method_arguments, method_options
from mmcam.runs.models import ExplainedModel
from mmcam.runs.options import RunOptions
from mmcam.runs.readout import report_text, summary
from mmcam.runs.run import RunResult

# ----------------------------------------------------------------------------- command lines


def run_command(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Run a script's `main(argv)` as a command and return its exit status. A `Refusal` (an
    output folder holding another run, a malformed annotation file, ...) prints `error:` and
    its message to stderr and returns 2, without a traceback (with `--debug` it propagates,
    traceback and all); any other exception is a fault and propagates with its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        main(argv)
    except Refusal as refusal:
        if "--debug" in argv:
            raise
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    return 0


def add_dataset_arguments(
    parser: Any, *, layout: str, root_holds: str, instances_for: str, words: str, limit: str
) -> Any:
    """The data options both dataset scripts share, in a group the script adds its own
    annotation files to (returned). The strings say what differs in the help."""
    data = parser.add_argument_group(f"data ({layout} under --root)")
    data.add_argument(
        "--root",
        default="data/shapes",
        help=f"dataset root holding {root_holds} (default: %(default)s)",
    )
    data.add_argument(
        "--split",
        default="val",
        help="split name: val to choose methods, layers and thresholds on, test to report "
        "(default: val)",
    )
    data.add_argument("--images", help="image folder (default: ROOT/SPLIT2014)")
    data.add_argument(
        "--instances",
        help=f"COCO instances file for {instances_for} (default: "
        "ROOT/annotations/instances_SPLIT2014.json when it exists)",
    )
    data.add_argument(
        "--no-instances", action="store_true", help="no box metrics even if instances exist"
    )
    data.add_argument(
        "--categories",
        choices=["coco", "shapes"],
        default="coco",
        help=f"without an instances file: {words} (default: coco)",
    )
    data.add_argument("--limit", type=int, help=f"only {limit}")
    return data


def add_model_arguments(parser: Any, *, checkpoint: str, hf: str, out: str) -> Any:
    """`--checkpoint`, `--hf` and `--out` in a "model" group the script adds its own options to
    (returned)."""
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", help=checkpoint)
    model.add_argument(
        "--hf", metavar="NAME_OR_PATH", help=f"{hf} from the Hugging Face hub or a local folder"
    )
    parser.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    return model


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


def add_run_arguments(
    parser: Any, *, deletion: int = 20, road: tuple[float, ...] = (0.2, 0.5, 0.8)
) -> None:
    """The options every dataset script shares (a `RunOptions` each), on an argparse parser."""
    group = parser.add_argument_group("explaining and scoring")
    group.add_argument(
        "--layer",
        metavar="NAME",
        help="the layer whose output is explained (default: the model's own: encoder.features "
        "for the bundled models, a late vision layer for BLIP and ViLT)",
    )
    add_method_arguments(group)
    group.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="blur every map by a Gaussian of SIGMA model-input pixels before boxes, pointing, "
        "deletion and figures (maps.npz keeps the maps unblurred), so the speckles of a "
        "guided-backprop map join one region (default: no blur)",
    )
    group.add_argument(
        "--box-threshold",
        type=float,
        help="a map's own box surrounds the largest region above this fraction of its maximum "
        "(the report also sweeps 0.10-0.50) (default: the method's, models/box_settings.json)",
    )
    group.add_argument(
        "--boxes",
        choices=["threshold", "refined"],
        help="the default box: the map's own (threshold), or refined from the image with the "
        "map as seeds (map + image); the report gives both (default: the method's, "
        "models/box_settings.json)",
    )
    group.add_argument(
        "--pointing-tolerance",
        type=float,
        default=None,
        metavar="PIXELS",
        help="pointing game: a map's peak may lie this many pixels outside a ground-truth box "
        "(default: Zhang et al.'s 15 px at 224 px scaled with each image, 15/224 of its shorter "
        "side: 8.6 px at 128 px); the pointing game at 0 px is always reported beside it",
    )
    group.add_argument(
        "--deletion-steps",
        type=int,
        default=deletion,
        help="deletion and insertion AUC in this many steps for the map, a random map and a "
        "centre Gaussian (6 x (steps + 1) forward passes per item, more where a step cuts "
        "through tied pixels); 0 skips both (default: %(default)s)",
    )
    group.add_argument(
        "--tie-orders",
        type=int,
        default=4,
        help="deletion and insertion: mean over this many random orders of a map's tied "
        "pixels (a sparse map's zeros), seeded by the item (default: %(default)s)",
    )
    group.add_argument(
        "--road-fractions",
        type=fraction_list,
        default=road,
        metavar="R,R,...",
        help="ROAD (remove and debias, most and least relevant first) of the map and both "
        "baselines at these shares of removed pixels, one sparse solve each; 'none' skips it "
        f"(default: {','.join(f'{r:g}' for r in road) or 'none'})",
    )
    group.add_argument(
        "--save-figures",
        type=int,
        nargs="?",
        const=16,
        default=0,
        metavar="N",
        help="write overlays with boxes to OUT/figures for the first N images (16 when N is "
        "left out)",
    )
    speed = parser.add_argument_group("batching and workers")
    speed.add_argument(
        "--batch-size", type=int, default=16, help="images per explain call (default: %(default)s)"
    )
    speed.add_argument(
        "--chunk-size",
        type=int,
        default=64,
        help="images per chunk, the unit written to disk, resumed and split across ranks; "
        "a restart must use the same value (default: %(default)s)",
    )
    speed.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader processes reading images (0: in the main process) (default: %(default)s)",
    )
    speed.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, ... ; auto: this rank's GPU when there is one (default: auto)",
    )
    speed.add_argument("--no-progress", action="store_true", help="no progress bar")
    speed.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a refusal (an output folder holding another run, a "
        "malformed annotation file, ...) as well as its message",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh when --out holds a run of other data, model or options (its files "
        "are removed); without it such a run is refused, and the same run resumes",
    )


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
