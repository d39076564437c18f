"""Map-seeded boxes: the map says where the object is, the image says where it ends.

A heat map marks the evidence a model read (an edge, a corner, the few cells its attention
used), not the object's extent, so a box around the map's strong region covers part of the
object. Here the map only seeds a colour segmentation of the image (GrabCut, Rother et al.
2004, OpenCV's implementation), as in weakly supervised localisation and segmentation:

* sure foreground: the connected region around the map's peak where ``map >= seed * max``;
* probable foreground: the map's support, ``map > support * max``;
* probable background: everything else, and sure background the image's outer frame where it
  lies outside the support. Low-map pixels are never *sure* background: the map is low on most
  of an object, and marking them so cuts the object off.

GrabCut fits a colour model to each side and cuts the image along colour edges; the box is the
one around the foreground's connected component that holds the seed. A refined box is labelled
(``Box.refined``): its extent comes from the image, so it must never be shown as the map's own.
GrabCut grows whatever the seed touches, so the box is also judged by the map alone
(`mmcam.boxes.evidence`): its score is the map's mass inside it beyond its share of the
image, and ``Box.flags`` says when it is a guess (it covers most of the image, the map's peak
lies outside it, the map's mass inside it is low, or the image shows no edge around it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from mmcam.boxes.evidence import edge_contrast, with_evidence
from mmcam.core.box import EIGHT_CONNECTED, Box, resize_map
from mmcam.core.extras import require

cv2 = require("cv2", "boxes", "Refined boxes (GrabCut)")

__all__ = ["MIN_IMAGE_SIDE", "RefineSettings", "is_flat", "refined_box", "refined_boxes"]

MIN_IMAGE_SIDE = 3
"""The smallest image side GrabCut is given: the image's outer frame is the background around the
seed, so at least one pixel must lie inside it (OpenCV asserts when a side is empty)."""


@dataclass(frozen=True)
class RefineSettings:
    """The seeds of a refined box, as fractions of the map's maximum.

    seed: the peak's region ``map >= seed * max`` is sure foreground.
    support: ``map > support * max`` is probable foreground, the rest probable background.
    iterations: GrabCut's rounds of colour-model fitting and cutting.
    """

    seed: float = 0.5
    support: float = 0.15
    iterations: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.support < self.seed <= 1:
            raise ValueError(
                "refinement seeds are fractions of the map's maximum with "
                f"0 <= support < seed <= 1, got support={self.support}, seed={self.seed}"
            )
        if self.iterations < 1:
            raise ValueError(f"GrabCut needs at least one iteration, got {self.iterations}")


def is_flat(map: torch.Tensor) -> bool:
    """The map has no peak (constant, all zero, or not finite): nothing to seed a box from."""
    values = map.detach().float()
    if not torch.isfinite(values).all():
        return True
    return not float(values.max()) > float(values.min())


def _as_image(image: object) -> np.ndarray:
    """An 8-bit ``[H, W, 3]`` array (a PIL image or an array of that shape)."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            "the image for refined boxes must be 8-bit RGB [H, W, 3] (a PIL image or a uint8 "
            f"array), got dtype {array.dtype} and shape {array.shape}"
        )
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"refined boxes need an image of at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} pixels "
            f"(its frame is the background around the map's seed), got {array.shape[1]} x "
            f"{array.shape[0]} (width x height); use the map's own box (boxes_from_map)"
        )
    return np.ascontiguousarray(array)


def _seed_mask(heat: np.ndarray, settings: RefineSettings) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut's initial labels `[H, W]` and the sure-foreground mask, from a map `[H, W]`."""
    peak = float(heat.max())
    labels, _ = ndimage.label(heat >= settings.seed * peak, structure=EIGHT_CONNECTED)
    sure = labels == labels.flat[int(np.argmax(heat))]  # the peak's own region
    support = heat > settings.support * peak
    mask = np.where(support, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    frame = np.zeros_like(support)
    frame[[0, -1], :] = frame[:, [0, -1]] = True
    mask[frame & ~support] = cv2.GC_BGD
    mask[sure] = cv2.GC_FGD
    return mask, sure


def refined_box(
    image: object, map: torch.Tensor, settings: RefineSettings | None = None
) -> Box | None:
    """The box of the object the map points at, its extent drawn from `image`.

    Args:
        image: the original image, 8-bit RGB ``[H, W, 3]`` (a PIL image or a uint8 array).
        map: ``[h, w]`` heat map (values >= 0); resized (bilinear) to the image's size.
        settings: the seeds (`RefineSettings`); the defaults when None.

    Returns:
        A `Box` with ``refined=True`` in the image's pixels, scored by the map's evidence inside
        it and flagged when it is a guess (`mmcam.boxes.evidence`: a flagged box
        scores below every box with no flag); None for a flat map (no peak, also once resized
        to the image: see `is_flat`), which callers flag.

    Raises:
        ValueError: the image is not 8-bit RGB, or has a side under `MIN_IMAGE_SIDE` pixels.
    """
    settings = settings or RefineSettings()
    pixels = _as_image(image)
    if map.dim() != 2:
        raise ValueError(f"refined_box takes one [H, W] map, got shape {tuple(map.shape)}")
    if is_flat(map):
        return None
    given = resize_map(map.detach().float().cpu(), pixels.shape[:2])
    if is_flat(given):  # the peak fell between the image's pixels
        return None
    heat = given.numpy() - float(given.min())
    mask, sure = _seed_mask(heat, settings)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))  # GrabCut's colour models
    cv2.setRNGSeed(0)  # its k-means start: the same box every run
    cv2.grabCut(
        pixels[..., ::-1].copy(), mask, None, background, foreground, settings.iterations,
        cv2.GC_INIT_WITH_MASK,
    )  # fmt: skip
    segment = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    labels, _ = ndimage.label(segment, structure=EIGHT_CONNECTED)
    kept = np.isin(labels, np.unique(labels[sure]))  # the segment that holds the seed
    rows, cols = np.nonzero(kept)
    box = Box(
        x=float(cols.min()),
        y=float(rows.min()),
        w=float(cols.max() + 1 - cols.min()),
        h=float(rows.max() + 1 - rows.min()),
        refined=True,
    )
    edge = edge_contrast(pixels, kept)
    return with_evidence(box, given, edge)  # the map as given: its contrast counts


def refined_boxes(
    image: object, maps: torch.Tensor, settings: RefineSettings | None = None
) -> list[list[Box]]:
    """`refined_box` for each of the maps ``[N, h, w]`` of one image: one list per map, holding
    its box, or empty for a flat map (like `boxes_from_maps`). The maps are resized together;
    GrabCut itself runs once per map (OpenCV does not batch it)."""
    if maps.dim() != 3:
        raise ValueError(f"refined_boxes takes [N, H, W] maps, got shape {tuple(maps.shape)}")
    pixels = _as_image(image)
    resized = resize_map(maps.detach().float().cpu(), pixels.shape[:2])
    boxes = [refined_box(pixels, heat, settings) for heat in resized]
    return [[box] if box is not None else [] for box in boxes]
