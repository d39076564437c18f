"""A box and the map-to-pixels steps that both box making (`mmcam.boxes`) and the box metrics
(`mmcam.evaluation.box_metrics`) stand on, kept once: the `Box`, resizing a map to the original
image, and the boxes around a thresholded map's 8-connected components.

Pixel convention: pixel ``(row r, column c)`` covers the continuous square
``[c, c + 1) x [r, r + 1)``; its centre is ``(c + 0.5, r + 0.5)``. A box covering columns 10..19
inclusive has ``x = 10, w = 10``, so ``x + w`` is one past the last column, as in COCO. Boxes made
from maps therefore have integer coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = [
    "EIGHT_CONNECTED", "Box", "Keep", "check_image_size", "component_boxes", "map_array",
    "per_map_sizes", "resize_map",
]  # fmt: skip

Keep = Literal["largest", "all"]

# 8-connectivity: diagonal neighbours join a component, as cv2.findContours (used by the
# CAM and Choe et al. reference code) does.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Box:
    """A box in COCO ``[x, y, w, h]`` pixels with a score; ``x + w`` is one past the last column."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    refined: bool = False  # True: the image drew the extent (map + image), not the map alone
    # Why the box is a guess rather than what the map shows (`mmcam.boxes.evidence`:
    # "covers_image", "peak_outside", "low_mass"); refined boxes carry them, empty: none found
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h, self.score)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"Box values must be finite, got {values}")
        if self.w < 0 or self.h < 0:
            raise ValueError(
                f"Box width and height must be >= 0, got w={self.w}, h={self.h} "
                "(boxes are COCO [x, y, w, h], not [x1, y1, x2, y2])"
            )

    @property
    def area(self) -> float:
        return self.w * self.h

    def to_list(self) -> list[float]:
        """``[x, y, w, h]`` as plain floats (the COCO ``bbox`` field)."""
        return [float(self.x), float(self.y), float(self.w), float(self.h)]

    def as_coco(self, image_id: int, category_id: int = 1) -> dict:
        """One COCO detection result: ``{"image_id", "category_id", "bbox", "score"}``."""
        return {
            "image_id": image_id,
            "category_id": category_id,
            "bbox": self.to_list(),
            "score": float(self.score),
        }


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    if len(image_size) != 2 or any(int(s) != s or s < 1 for s in image_size):
        raise ValueError(f"image_size must be (height, width) positive ints, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def resize_map(map: torch.Tensor, image_size: Sequence[int] | None) -> torch.Tensor:
    """Resize ``[..., H, W]`` maps to ``image_size = (height, width)``, bilinear (no corner align).

    Undoes the preprocessing's resize so that boxes and points land in original-image pixels.
    ``None`` or the map's own size returns the map unchanged.
    """
    if map.dim() < 2:
        raise ValueError(f"a map must have shape [..., H, W], got shape {tuple(map.shape)}")
    if image_size is None:
        return map
    size = check_image_size(image_size)
    if tuple(map.shape[-2:]) == size:
        return map
    lead = map.shape[:-2]
    flat = map.reshape(-1, 1, *map.shape[-2:]).float()  # [N, 1, H, W]
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


def component_boxes(heat: np.ndarray, threshold: float, keep: Keep, min_area: int) -> list[Box]:
    """Boxes for one 2-D float array already at the original image's size."""
    peak = float(heat.max())
    if not peak > 0:  # empty (all-zero) map: no evidence, no box
        return []
    labels, n = ndimage.label(heat > threshold * peak, structure=EIGHT_CONNECTED)
    if n == 0:
        return []
    flat_labels = labels.ravel()
    areas = np.bincount(flat_labels, minlength=n + 1)[1:]  # [n]
    sums = np.bincount(flat_labels, weights=heat.ravel(), minlength=n + 1)[1:]
    means = sums / areas
    slices = ndimage.find_objects(labels)
    candidates = [i for i in range(n) if areas[i] >= min_area]
    if keep == "largest":
        # Largest area; ties go to the higher mean, then to the first in row-major order.
        candidates = sorted(candidates, key=lambda i: (-areas[i], -means[i], i))[:1]
    else:
        candidates = sorted(candidates, key=lambda i: (-means[i], -areas[i], i))
    boxes = []
    for i in candidates:
        rows, cols = slices[i]
        boxes.append(
            Box(
                x=float(cols.start),
                y=float(rows.start),
                w=float(cols.stop - cols.start),
                h=float(rows.stop - rows.start),
                score=float(means[i]),
            )
        )
    return boxes


def map_array(map: torch.Tensor) -> np.ndarray:
    heat = map.detach().float().cpu().numpy()
    if not np.isfinite(heat).all():
        raise ValueError("the map holds NaN or inf values; fix the map before localising")
    return heat


def per_map_sizes(
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None, n: int
) -> list[tuple[int, int]] | None:
    """Normalise ``None`` / one ``(h, w)`` / ``n`` sizes to a list of ``n`` sizes or None."""
    if image_sizes is None:
        return None
    if len(image_sizes) == 2 and all(isinstance(s, int | np.integer) for s in image_sizes):
        return [check_image_size(image_sizes)] * n  # type: ignore[arg-type]
    if len(image_sizes) != n:
        raise ValueError(f"got {len(image_sizes)} image sizes for {n} maps; give one per map")
    return [check_image_size(s) for s in image_sizes]  # type: ignore[arg-type]
