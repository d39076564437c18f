"""Weakly supervised localisation: heat maps -> boxes.

A map is thresholded at a fraction of its maximum (CAM, Zhou et al. 2016: 0.2; Grad-CAM,
Selvaraju et al. 2017: 0.15), its connected components are found, and the box around the
largest component (or around every component) is returned in COCO ``[x, y, w, h]`` pixels
of the original image. Speckled pixel-space maps (guided backprop) can be blurred first
(`smooth_maps`), so the pieces of one object's outline join one component.

Pixel convention (used by :mod:`mmcam.evaluation.box_metrics` too): pixel ``(row r,
column c)`` covers the continuous square ``[c, c + 1) x [r, r + 1)``; its centre is
``(c + 0.5, r + 0.5)``. A box covering columns 10..19 inclusive has ``x = 10, w = 10``, so
``x + w`` is one past the last column, as in COCO. Boxes made from maps therefore have integer
coordinates.
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

__all__ = ["Box", "boxes_from_map", "boxes_from_maps", "resize_map", "smooth_maps"]

Keep = Literal["largest", "all"]

# 8-connectivity: diagonal neighbours join a component, as cv2.findContours (used by the
# CAM and Choe et al. reference code) does.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Box:
    """A box in COCO ``[x, y, w, h]`` pixels with a score; ``x + w`` is one past the last column."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    refined: bool = False  # True: the image drew the extent (map + image), not the map alone
    # Why the box is a guess rather than what the map shows (`mmcam.evaluation.box_evidence`:
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


def _check_size(image_size: Sequence[int]) -> tuple[int, int]:
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
    size = _check_size(image_size)
    if tuple(map.shape[-2:]) == size:
        return map
    lead = map.shape[:-2]
    flat = map.reshape(-1, 1, *map.shape[-2:]).float()  # [N, 1, H, W]
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


def smooth_maps(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Maps `[..., H, W]` blurred by a Gaussian of `sigma` pixels (scipy.ndimage, edges
    reflected) and rescaled to a maximum of 1; `sigma` 0 returns them unchanged."""
    if sigma < 0:
        raise ValueError(f"smoothing sigma must be >= 0 pixels, got {sigma}")
    if sigma == 0:
        return maps
    array = maps.detach().float().cpu().numpy()
    blurred = ndimage.gaussian_filter(array, sigma=(0,) * (array.ndim - 2) + (sigma, sigma))
    peaks = blurred.max(axis=(-2, -1), keepdims=True)
    scaled = np.divide(blurred, peaks, out=np.zeros_like(blurred), where=peaks > 0)
    return torch.from_numpy(scaled).to(maps.device)


def _boxes_from_array(heat: np.ndarray, threshold: float, keep: Keep, min_area: int) -> list[Box]:
    """Boxes for one 2-D float array already at the original image's size."""
    peak = float(heat.max())
    if not peak > 0:  # empty (all-zero) map: no evidence, no box
        return []
    labels, n = ndimage.label(heat > threshold * peak, structure=_EIGHT_CONNECTED)
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


def _check_args(threshold: float, keep: str, min_area: int) -> None:
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold is a fraction of the map's maximum in [0, 1), got {threshold}")
    if keep not in ("largest", "all"):
        raise ValueError(f"keep must be 'largest' or 'all', got {keep!r}")
    if min_area < 1:
        raise ValueError(f"min_area is a pixel count >= 1, got {min_area}")


def _as_array(map: torch.Tensor) -> np.ndarray:
    heat = map.detach().float().cpu().numpy()
    if not np.isfinite(heat).all():
        raise ValueError("the map holds NaN or inf values; fix the map before localising")
    return heat


def boxes_from_map(
    map: torch.Tensor,
    threshold: float = 0.15,
    *,
    keep: Keep = "largest",
    min_area: int = 1,
    image_size: Sequence[int] | None = None,
) -> list[Box]:
    """Weakly supervised boxes from one ``[H, W]`` heat map.

    Pixels with ``map > threshold * max(map)`` are kept (0.15: Grad-CAM, Selvaraju et al.
    2017; 0.2: CAM, Zhou et al. 2016), split into 8-connected components, and each
    component's bounding box is returned in COCO ``[x, y, w, h]`` pixels.

    Args:
        map: ``[H, W]`` map at the model's input resolution (values >= 0, e.g. in [0, 1]).
        threshold: fraction of the map's maximum; strict ``>``, so 0 keeps the map's support.
        keep: ``"largest"``: one box, around the component with the most pixels (the
            CAM/Grad-CAM protocol); ``"all"``: one box per component, best score first.
        min_area: components with fewer pixels (after resizing) are dropped, in both modes.
        image_size: ``(height, width)`` of the original image; the map is first resized
            to it (bilinear) so the boxes are in original-image pixels.

    Returns:
        A list of :class:`Box` (empty for an all-zero map). ``score`` is the mean of the
        (resized) map over the component's pixels: it lies in ``(threshold * max, max]``
        and, unlike the max, tells a broad weak region from a strongly activated one, so
        it ranks ``keep="all"`` boxes sensibly in COCO detection results.
    """
    if map.dim() != 2:
        raise ValueError(
            f"boxes_from_map takes one [H, W] map, got shape {tuple(map.shape)}; "
            "use boxes_from_maps for a batch"
        )
    _check_args(threshold, keep, min_area)
    heat = _as_array(resize_map(map, image_size))
    return _boxes_from_array(heat, threshold, keep, min_area)


def boxes_from_maps(
    maps: torch.Tensor,
    threshold: float = 0.15,
    *,
    keep: Keep = "largest",
    min_area: int = 1,
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> list[list[Box]]:
    """:func:`boxes_from_map` for a batch of ``[N, H, W]`` maps; one list of boxes per map.

    ``image_sizes`` is one ``(height, width)`` for all maps, one per map, or ``None``.
    Maps sharing a size are resized together in one call.
    """
    if maps.dim() != 3:
        raise ValueError(f"boxes_from_maps takes [N, H, W] maps, got shape {tuple(maps.shape)}")
    _check_args(threshold, keep, min_area)
    sizes = _per_map_sizes(image_sizes, maps.shape[0])
    if sizes is None or len(set(sizes)) == 1:
        resized = resize_map(maps, None if sizes is None else sizes[0])
        heats = list(_as_array(resized))
    else:
        heats = [_as_array(resize_map(m, s)) for m, s in zip(maps, sizes, strict=True)]
    return [_boxes_from_array(h, threshold, keep, min_area) for h in heats]


def _per_map_sizes(
    image_sizes: Sequence[int] | Sequence[Sequence[int]] | None, n: int
) -> list[tuple[int, int]] | None:
    """Normalise ``None`` / one ``(h, w)`` / ``n`` sizes to a list of ``n`` sizes or None."""
    if image_sizes is None:
        return None
    if len(image_sizes) == 2 and all(isinstance(s, int | np.integer) for s in image_sizes):
        return [_check_size(image_sizes)] * n  # type: ignore[arg-type]
    if len(image_sizes) != n:
        raise ValueError(f"got {len(image_sizes)} image sizes for {n} maps; give one per map")
    return [_check_size(s) for s in image_sizes]  # type: ignore[arg-type]
