"""Weakly supervised localisation: heat maps -> boxes.

A map is thresholded at a fraction of its maximum (CAM, Zhou et al. 2016: 0.2; Grad-CAM,
Selvaraju et al. 2017: 0.15), its connected components are found, and the box around the
largest component (or around every component) is returned in COCO ``[x, y, w, h]`` pixels
of the original image. Speckled pixel-space maps (guided backprop) can be blurred first
(`smooth_maps`), so the pieces of one object's outline join one component.

Boxes are `mmcam.core.box.Box` in its pixel convention (pixel ``(r, c)`` covers
``[c, c + 1) x [r, r + 1)``; ``x + w`` is one past the last column, as in COCO).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from mmcam.core.box import Box, Keep, component_boxes, map_array, per_map_sizes, resize_map

__all__ = ["Box", "boxes_from_map", "boxes_from_maps", "resize_map", "smooth_maps"]


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


def _check_args(threshold: float, keep: str, min_area: int) -> None:
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold is a fraction of the map's maximum in [0, 1), got {threshold}")
    if keep not in ("largest", "all"):
        raise ValueError(f"keep must be 'largest' or 'all', got {keep!r}")
    if min_area < 1:
        raise ValueError(f"min_area is a pixel count >= 1, got {min_area}")


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
    heat = map_array(resize_map(map, image_size))
    return component_boxes(heat, threshold, keep, min_area)


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
    sizes = per_map_sizes(image_sizes, maps.shape[0])
    if sizes is None or len(set(sizes)) == 1:
        resized = resize_map(maps, None if sizes is None else sizes[0])
        heats = list(map_array(resized))
    else:
        heats = [map_array(resize_map(m, s)) for m, s in zip(maps, sizes, strict=True)]
    return [component_boxes(h, threshold, keep, min_area) for h in heats]
