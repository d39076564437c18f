"""Per-method box settings: how each method's maps become boxes by default.

One 0.15 for every map ignores that maps differ in how much of an object they cover, so the
threshold, the refinement's seeds and whether to refine at all are chosen per method on the
val split (`scripts/choose_boxes.py`, which writes `models/box_settings.json`). The dataset
scripts and the demo read that table; a method missing from it gets `BoxSettings()`.

The table also names the default method (`DefaultMethod`): the one whose boxes are best on val
among the methods that pass the sanity checks (`scripts/sanity_check.py`), with the layer it is
read at for each architecture it was chosen on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mmcam.boxes.from_maps import Box, boxes_from_map, resize_map
from mmcam.boxes.refine import RefineSettings, is_flat, refined_box
from mmcam.core.bundled import BUNDLED

__all__ = [
    "BOX_SETTINGS", "BoxSettings", "DefaultMethod", "MapBoxes", "box_settings", "default_method",
    "map_boxes", "read_table",
]  # fmt: skip

BOX_SETTINGS = BUNDLED / "box_settings.json"

BoxKind = Literal["threshold", "refined"]


@dataclass(frozen=True)
class BoxSettings:
    """threshold: the map's own box surrounds the largest region above this fraction of its
    maximum; boxes: which box is the default ("refined": map + image, `mmcam.boxes.refine`);
    seed, support: the refinement's seeds (`RefineSettings`)."""

    threshold: float = 0.15
    boxes: BoxKind = "refined"
    seed: float = 0.5
    support: float = 0.15

    def __post_init__(self) -> None:
        if self.boxes not in ("threshold", "refined"):
            raise ValueError(f"boxes must be 'threshold' or 'refined', got {self.boxes!r}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold is a fraction of the map's maximum, got {self.threshold}")
        self.refine_settings()  # seeds checked now

    def refine_settings(self) -> RefineSettings:
        return RefineSettings(seed=self.seed, support=self.support)

    def to_dict(self) -> dict:
        return asdict(self)


def read_table(path: str | Path = BOX_SETTINGS) -> dict:
    """The box settings table at `path`; a missing table is an error, never a silent switch to
    other defaults."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no box settings table at {path}: write one with `python scripts/choose_boxes.py "
            f"--table {path}`, or use the bundled one, {BOX_SETTINGS}"
        )
    return json.loads(path.read_text())


def box_settings(method: str, path: str | Path = BOX_SETTINGS) -> BoxSettings:
    """The chosen settings of `method` from the table at `path`; `BoxSettings()` for a method
    the table does not list (one registered after the choice was made)."""
    table = read_table(path)["methods"]
    return BoxSettings(**table[method]) if method in table else BoxSettings()


@dataclass(frozen=True)
class DefaultMethod:
    """The method a user gets when they name none, and the layer it is read at for each
    architecture (a model class's name) it was chosen on; other models use their own layer."""

    method: str
    layers: dict[str, str] = field(default_factory=dict)

    def layer_for(self, model: object, method: str) -> str | None:
        """The chosen layer of `model` when `method` is the default one and `model`'s class was
        among those it was chosen on; None: the model's own layer."""
        return self.layers.get(type(model).__name__) if method == self.method else None


def default_method(path: str | Path = BOX_SETTINGS) -> DefaultMethod:
    """The default method of the table at `path`; a table without one is an error."""
    entry = read_table(path).get("default")
    if not entry:
        raise ValueError(
            f"the box settings table {path} names no default method; `python "
            "scripts/choose_boxes.py` writes one"
        )
    return DefaultMethod(**entry)


@dataclass(frozen=True)
class MapBoxes:
    """One map's boxes: its own (`threshold`), the refined one (map + image), and which of the
    two is the default (`box`). `flat`: the map has no peak, so there is no box."""

    threshold: Box | None
    refined: Box | None
    box: Box | None
    flat: bool


def map_boxes(
    map: torch.Tensor, image: object, settings: BoxSettings, kind: BoxKind | None = None
) -> MapBoxes:
    """Both boxes of one ``[h, w]`` map in the pixels of `image` (8-bit RGB ``[H, W, 3]``),
    the default picked by `kind` (the settings' own when None)."""
    size = np.asarray(image).shape[:2]
    heat = resize_map(map.detach().float().cpu(), size)
    if is_flat(heat):
        return MapBoxes(None, None, None, True)
    own = boxes_from_map(heat, settings.threshold)
    threshold = own[0] if own else None
    refined = refined_box(image, heat, settings.refine_settings())
    chosen = threshold if (kind or settings.boxes) == "threshold" else refined
    return MapBoxes(threshold, refined, chosen, False)
