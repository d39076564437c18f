"""The flags of the dataset subcommands (`mmcam explain-captions`, `mmcam explain-vqa`) and the
dataset benchmarks: the data, the model, and how maps are made, scored and batched; the flags
every subcommand shares come from `mmcam.cli.options`."""

from __future__ import annotations

from typing import Any

from mmcam.cli.options import add_device, add_limit, add_out, add_root, add_split, add_workers
from mmcam.runs.command_line import fraction_list
from mmcam.runs.method_flags import add_method_arguments

__all__ = ["add_dataset_arguments", "add_model_arguments", "add_run_arguments"]


def add_dataset_arguments(
    parser: Any, *, layout: str, root_holds: str, instances_for: str, words: str, limit: str
) -> Any:
    """The data options both dataset scripts share, in a group the script adds its own
    annotation files to (returned). The strings say what differs in the help."""
    data = parser.add_argument_group(f"data ({layout} under --root)")
    add_root(data, root_holds)
    add_split(data)
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
    add_limit(data, what=limit)
    return data


def add_model_arguments(parser: Any, *, checkpoint: str, hf: str, out: str, writes: str) -> Any:
    """`--checkpoint`, `--hf` and `--out` in a "model" group the script adds its own options to
    (returned)."""
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", help=checkpoint)
    model.add_argument(
        "--hf", metavar="NAME_OR_PATH", help=f"{hf} from the Hugging Face hub or a local folder"
    )
    add_out(parser, out, writes)
    return model


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
    add_workers(speed)
    add_device(speed)
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
