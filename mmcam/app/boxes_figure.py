"""The figure of why a map's peak and an object's box differ, and what refinement adds.

One row per shape word of the bundled sample captions: the object and its true box; the default
method's map of the word with its peak and the map's own box (the largest region above the
method's threshold); the box refined from the image with the map as seeds (map + image). Each
box is titled with its IoU against the true one. `make run` writes it as `boxes.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle
from torch import Tensor

from mmcam.boxes.from_maps import Box
from mmcam.boxes.settings import MapBoxes
from mmcam.evaluation.box_metrics import box_iou
from mmcam.visualize import new_figure, overlay, save_figure

__all__ = ["BoxedWord", "boxes_figure"]

TRUE_BOX = {"edgecolor": "yellow", "linestyle": "--", "lw": 1.5}


@dataclass
class BoxedWord:
    """One shape word: its image (uint8 `[H, W, 3]`), its map at the image's size, the
    object's true box, the map's peak `(x, y)` and both boxes of the map."""

    word: str
    image: np.ndarray
    heat_map: Tensor
    truth: Sequence[float]
    peak: tuple[int, int]
    boxes: MapBoxes

    def iou(self, box: Box | None) -> float:
        """IoU of `box` (one of `boxes`) with the true box; 0 when there is no box."""
        return box_iou(box.to_list(), list(self.truth)) if box is not None else 0.0


def boxes_figure(words: Sequence[BoxedWord], method: str, path: str | Path) -> Path:
    """Draw `words` (one row each) as explained by `method` (its shown name) into `path`."""
    figure, axes = new_figure(len(words), 3, (7.2, 2.5 * len(words)))
    for row, found in zip(axes, words, strict=True):
        for axis in row:
            axis.axis("off")
        row[0].imshow(found.image)
        row[1].imshow(overlay(found.image, found.heat_map))
        row[1].plot(*found.peak, marker="x", color="white", markersize=9, mew=2)
        row[2].imshow(found.image)
        titles = (
            f"'{found.word}': the object",
            f"its map: peak x, own box\n{_iou(found.boxes.threshold, found)}",
            f"map + image: refined box\n{_iou(found.boxes.refined, found)}",
        )
        for axis, title in zip(row, titles, strict=True):
            axis.set_title(title, fontsize=9)
        for axis, box, colour in (
            (row[1], found.boxes.threshold, "white"),
            (row[2], found.boxes.refined, "lime"),
        ):
            if box is not None:
                axis.add_patch(Rectangle((box.x, box.y), box.w, box.h, fill=False,
                                             edgecolor=colour, lw=2))  # fmt: skip
        for axis in row:
            x, y, w, h = found.truth
            axis.add_patch(Rectangle((x, y), w, h, fill=False, **TRUE_BOX))
    figure.suptitle(f"{method}\ndashed yellow: the object's true box; white: the map's own box; "
                    "green: refined from the image", fontsize=9)  # fmt: skip
    return save_figure(figure, path)


def _iou(box: Box | None, found: BoxedWord) -> str:
    return "none" if box is None else f"IoU {found.iou(box):.2f}"
