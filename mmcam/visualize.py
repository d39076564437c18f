"""Drawing maps: heat-map overlays on the image, and grids of titled panels saved as PNG. Imports
core only."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from torch import Tensor

from mmcam.core.explanation import Explanation

ImageLike = Image.Image | np.ndarray | Tensor


def image_array(image: ImageLike) -> np.ndarray:
    """`image` as an `[H, W, 3]` float array in [0, 1] (PIL, uint8/float array, or `[3, H, W]`
    tensor in [0, 1])."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected an image tensor [3, H, W], got {tuple(image.shape)}")
        image = image.detach().float().cpu().expand(3, -1, -1).permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.clip(array[..., :3], 0.0, 1.0)


def overlay(
    image: ImageLike, heat_map: Tensor, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """The image with `heat_map` ([h, w] in [0, 1], any size) blended on top: uint8 `[H, W, 3]`.

    Args:
        image: a tensor `[3, H, W]` (or `[1, H, W]`) in [0, 1], a PIL image or an array.
        heat_map: the map `[h, w]` in [0, 1]; resized (bilinear) to the image when its size
            differs.
        alpha: the map's weight in the blend.
        cmap: the matplotlib colour map.

    Returns:
        The blended picture as a uint8 array `[H, W, 3]`.

    Raises:
        ValueError: an image tensor that is not `[3, H, W]` or `[1, H, W]`.
    """
    base = image_array(image)
    height, width = base.shape[:2]
    heat = heat_map.detach().float()
    if tuple(heat.shape) != (height, width):
        heat = F.interpolate(heat[None, None], size=(height, width), mode="bilinear")[0, 0]
    colours = colormaps[cmap](heat.clamp(0, 1).cpu().numpy())[..., :3]
    blended = (1 - alpha) * base + alpha * colours
    return (blended * 255).round().astype(np.uint8)


def save_overlay(
    path: str | Path, image: ImageLike, heat_map: Tensor, alpha: float = 0.5, cmap: str = "jet"
) -> Path:
    """Write `overlay(image, heat_map)` as a PNG and return its path.

    Args:
        path: the PNG to write (its folders are made as needed).
        image: the image, as for `overlay`.
        heat_map: the map `[h, w]` in [0, 1], e.g. `explanation.maps[0]`.
        alpha: the map's weight in the blend.
        cmap: the matplotlib colour map.

    Returns:
        The path written.

    Raises:
        ValueError: an image tensor that is not `[3, H, W]` or `[1, H, W]`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image, heat_map, alpha, cmap)).save(path)
    return path


@dataclass
class PanelRow:
    """One row of a figure: the image titled `name`, then one titled overlay per map.

    `boxes[i]` (COCO [x, y, w, h] lists in image pixels) are drawn on panel i when given, in
    white; `refined[i]`, boxes refined from the image with the map as seeds (map + image), in
    green.

    Args:
        name: the row's title, over the image.
        maps: one map per panel (`[h, w]` each, in [0, 1]).
        titles: one title per map.
        boxes: per panel, the map's own boxes to draw (white).
        refined: per panel, the refined boxes to draw (green).

    Raises:
        ValueError: not one title per map.
    """

    name: str
    maps: Sequence[Tensor] | Tensor
    titles: Sequence[str]
    boxes: Sequence[Sequence[Sequence[float]]] | None = None
    refined: Sequence[Sequence[Sequence[float]]] | None = None

    def __post_init__(self) -> None:
        if len(self.maps) != len(self.titles):
            raise ValueError(
                f"row {self.name!r}: {len(self.maps)} maps but {len(self.titles)} titles"
            )


def map_grid(
    image: ImageLike,
    rows: Sequence[PanelRow],
    path: str | Path,
    *,
    suptitle: str | None = None,
    alpha: float = 0.5,
) -> Path:
    """Save one figure with a row of panels per `PanelRow` (a method, a question, ...).

    Args:
        image: the image every panel shows, as for `overlay`.
        rows: the figure's rows.
        path: the PNG to write (its folders are made as needed).
        suptitle: a title over the whole figure.
        alpha: the maps' weight in the blends.

    Returns:
        The path written.
    """
    base = image_array(image)
    columns = 1 + max(len(row.maps) for row in rows)
    figure, axes = new_figure(len(rows), columns, (2.1 * columns, 2.3 * len(rows)))
    for row, row_axes in zip(rows, axes, strict=True):
        for axis in row_axes:
            axis.axis("off")
        row_axes[0].imshow(base)
        row_axes[0].set_title(textwrap.fill(row.name, 24), fontsize=9, fontweight="bold")
        for index, (heat_map, title) in enumerate(zip(row.maps, row.titles, strict=True)):
            axis = row_axes[index + 1]
            axis.imshow(overlay(base, heat_map, alpha))
            axis.set_title(textwrap.fill(title, 24), fontsize=9)
            for boxes, colour in ((row.boxes, "white"), (row.refined, "lime")):
                for x, y, w, h in boxes[index] if boxes is not None else []:
                    box = Rectangle((x, y), w, h, fill=False, edgecolor=colour, lw=1.5)
                    axis.add_patch(box)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    return save_figure(figure, path)


def new_figure(rows: int, columns: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure of `size` inches and its `[rows, columns]` array of axes. The figure belongs to
    no pyplot window and is drawn by Agg when saved, so drawing never touches the importing
    program's matplotlib backend or open figures."""
    figure = Figure(figsize=size)
    axes: np.ndarray = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Lay out `figure` and write it as a PNG at `path` (folders made as needed)."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def save_image_grid(
    images: Tensor, titles: Sequence[str], path: str | Path, columns: int = 8
) -> Path:
    """Save `[N, 3, H, W]` images in [0, 1] as one titled grid figure (PNG)."""
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    figure, axes = new_figure(rows, columns, (1.6 * columns, 1.8 * rows))
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(image_array(images[index]))
            axis.set_title(titles[index], fontsize=8)
    return save_figure(figure, path)


def panel_row(explanations: dict[str, Explanation], name: str, index: int = 0) -> PanelRow:
    """One figure row for image `index` of the batch: a panel per method, titled with the method
    (and the channel, for the strongest feature map). Draw it with `map_grid`."""
    titles = [
        f"{method}: {explanation.labels[index]}" if explanation.labels else method
        for method, explanation in explanations.items()
    ]
    maps = [explanation.maps[index] for explanation in explanations.values()]
    return PanelRow(name, maps, titles)
