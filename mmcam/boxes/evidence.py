"""How much of a map's evidence a box holds, and the flags of a box the map does not support.

A refined box (`mmcam.boxes.refine`) takes its extent from the image: GrabCut grows
whatever the map's seed touches, so a box on a plain background, one covering the whole image,
or one seeded by a map with almost no contrast looks as tidy as a right one. What tells them
apart is the map itself, read as it was given (clipped at 0, never stretched to [0, 1]):

* ``mass``: the share of the map's total mass inside the box;
* ``area``: the box's share of the image;
* ``excess = mass - area``: the mass inside beyond what a flat map would put there (0 for a
  flat or near-flat map and for the whole-image box, 1 only for all the mass in a point);
* ``peak_inside``: the map's maximum pixel (the first in row-major order, as in the pointing
  game) has its centre inside the box;
* ``edge`` (refined boxes, which know their segment): how far the segment's mean colour lies
  from the mean colour of the pixels just around it, in 8-bit levels.

A box is flagged as a guess (``Box.flags``) when

* ``covers_image``: ``area >= COVERS_IMAGE`` (0.5). From first principles: the whole-image box,
  a guess that needs no map, has IoU ``area`` with such a box, so it localises the same object
  as well;
* ``peak_outside``: the map's strongest evidence is not in the box;
* ``low_mass``: ``excess < LOW_EXCESS`` (0.1). Chosen on the shapes val split: of the default
  map's refined boxes on its first 150 images (672 shape words and questions), the right ones
  (IoU >= 0.5) hold an excess of 0.150 at least (5th percentile 0.47), so 0.1 flags none of them,
  while a near-flat map's box holds about 0;
* ``no_edge``: ``edge < NO_EDGE`` (5 levels) in every channel: the image shows no edge around
  the segment, so its extent is the map's seed, not an object's (a plain background). From first
  principles: 5 levels, 2% of the range, is about the step a person can just see on a mid-grey,
  and above 8-bit JPEG noise.

Its score, what COCO AP ranks detections by, is the evidence: ``excess`` for a box with no
flag (so at least ``LOW_EXCESS``) and ``LOW_EXCESS * excess`` for a flagged one (below
``LOW_EXCESS``, as ``excess < 1`` for any box of positive area): a flagged guess never outranks
a box the map supports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import ndimage

from mmcam.boxes.from_maps import Box
from mmcam.evaluation.box_metrics import energy_in_box, pointing_game

__all__ = [
    "BOX_FLAGS", "COVERS_IMAGE", "LOW_EXCESS", "NO_EDGE", "BoxEvidence", "box_evidence",
    "edge_contrast", "with_evidence",
]  # fmt: skip

COVERS_IMAGE = 0.5  # share of the image: at or above it the whole-image box does as well
LOW_EXCESS = 0.1  # the map's mass inside beyond the box's share of the image; below it: a guess
NO_EDGE = 5.0  # 8-bit levels between a segment's mean colour and its surroundings'; below: none

BOX_FLAGS = ("covers_image", "peak_outside", "low_mass", "no_edge")


@dataclass(frozen=True)
class BoxEvidence:
    """A box's hold on a map: `mass` (share of the map's mass inside), `area` (share of the
    image), whether the map's peak is inside, the image's `edge` around the box's segment (None:
    not known), and the flags and score that follow (module docstring)."""

    mass: float
    area: float
    peak_inside: bool
    edge: float | None = None  # 8-bit levels (`edge_contrast`)

    @property
    def excess(self) -> float:
        """The mass inside beyond what a flat map would put there: ``mass - area``."""
        return self.mass - self.area

    @property
    def flags(self) -> tuple[str, ...]:
        """The reasons the box is a guess rather than what the map shows, in `BOX_FLAGS` order."""
        found = {
            "covers_image": self.area >= COVERS_IMAGE,
            "peak_outside": not self.peak_inside,
            "low_mass": self.excess < LOW_EXCESS,
            "no_edge": self.edge is not None and self.edge < NO_EDGE,
        }
        return tuple(name for name in BOX_FLAGS if found[name])

    @property
    def score(self) -> float:
        """`excess` for a box with no flag, ``LOW_EXCESS * excess`` for a flagged one, in [0, 1]."""
        excess = min(max(self.excess, 0.0), 1.0)
        return LOW_EXCESS * excess if self.flags else excess


def edge_contrast(pixels: np.ndarray, segment: np.ndarray, width: int = 2) -> float | None:
    """How far the mean colour of `segment` (``[H, W]`` bool) lies from the mean colour of the
    pixels within `width` pixels around it, in 8-bit levels of `pixels` (``[H, W, 3]``), the
    largest channel's difference; None when nothing lies around it (the segment is the image)."""
    ring = ndimage.binary_dilation(segment, iterations=width) & ~segment
    if not ring.any() or not segment.any():
        return None
    colours = np.asarray(pixels, dtype=np.float64)
    return float(np.abs(colours[segment].mean(axis=0) - colours[ring].mean(axis=0)).max())


def box_evidence(heat: torch.Tensor, box: Box, edge: float | None = None) -> BoxEvidence:
    """The evidence of map `heat` (``[H, W]`` in the image's pixels, read as given and clipped
    at 0) inside `box` (COCO ``[x, y, w, h]`` pixels of the same image); `edge`: the image's
    `edge_contrast` around the box's segment, when known."""
    if heat.dim() != 2:
        raise ValueError(f"box_evidence takes one [H, W] map, got shape {tuple(heat.shape)}")
    values = heat.detach().double().cpu().clamp(min=0)
    corners = [box.to_list()]
    mass = energy_in_box(values, corners)  # pixels whose centre is in the box
    peak_inside = bool(pointing_game(values, corners, 0).per_map[0])
    return BoxEvidence(mass, min(box.area / values.numel(), 1.0), peak_inside, edge)


def with_evidence(box: Box, heat: torch.Tensor, edge: float | None = None) -> Box:
    """`box` scored by the evidence of `heat` inside it, with its flags (`box_evidence`)."""
    evidence = box_evidence(heat, box, edge)
    return replace(box, score=evidence.score, flags=evidence.flags)
