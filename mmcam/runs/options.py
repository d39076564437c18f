"""The options of a dataset run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmcam.boxes.settings import BoxSettings
from mmcam.methods.perturbation import chunking_policy

__all__ = ["RunOptions"]


# ----------------------------------------------------------------------------- options


@dataclass
class RunOptions:
    """How a dataset run works. The fields above `workers` change the outputs and are kept in
    `run.json`: a restart must use the same ones."""

    method: str = "gradcam"
    smooth: float = 0.0  # Gaussian sigma (input pixels) blurring maps before they are scored
    box_threshold: float = 0.15
    boxes: str = "threshold"  # the default box: the map's own, or "refined" (map + image)
    refine_seed: float = 0.5  # refined boxes: the peak's region above this fraction is sure
    refine_support: float = 0.15  # foreground; the map above this, probable foreground
    pointing_tolerance: float | None = None  # pixels; None: 15/224 of each image's shorter side
    deletion_steps: int = 20  # deletion and insertion AUC in this many steps; 0: neither
    tie_orders: int = 4  # ... averaged over this many random orders of tied pixels
    road_fractions: tuple[float, ...] = (0.2, 0.5, 0.8)  # ROAD's removed shares; (): none
    baselines: bool = True  # faithfulness of the random map and centre Gaussian too
    max_length: int = 20
    beam_size: int = 1
    top_k: int = 3
    window: int = 16  # occlusion: window side and stride in model-input pixels
    stride: int | None = None  # (None: half the window)
    n_masks: int = 2000  # RISE: masks, cell side in pixels (None: a 7 x 7 grid), keep chance
    cell: int | None = None
    keep_probability: float = 0.5
    sweep_batch: int | None = None  # perturbed copies per forward (None: the default chunking)
    batch_size: int = 16
    chunk_size: int = 64
    save_figures: int = 0  # figures of the first N items
    workers: int = 2
    progress: bool = True
    overwrite: bool = False  # start afresh over a run of other settings in the same folder

    @classmethod
    def with_boxes(cls, settings: BoxSettings, **fields: Any) -> RunOptions:
        """Options whose box fields are `settings` (a method's row of the box table)."""
        return cls(
            box_threshold=settings.threshold, boxes=settings.boxes,
            refine_seed=settings.seed, refine_support=settings.support, **fields,
        )  # fmt: skip

    def box_settings(self) -> BoxSettings:
        """The box fields as `BoxSettings` (what `evaluation.map_boxes` takes)."""
        return BoxSettings(self.box_threshold, self.boxes, self.refine_seed, self.refine_support)

    def stamp(self) -> dict:
        """The fields that change the outputs (a perturbation method's settings only for it)."""
        kept = asdict(self)
        kept["road_fractions"] = list(self.road_fractions)  # as run.json reads it back
        for name in ("workers", "progress", "overwrite"):
            kept.pop(name)
        used = _PERTURBATION_FIELDS.get(self.method, ())
        for name in {name for fields in _PERTURBATION_FIELDS.values() for name in fields}:
            if name not in used:
                kept.pop(name)
        if self.method in _PERTURBATION_FIELDS and self.sweep_batch is None:
            kept["sweep_chunking"] = chunking_policy()  # what decides the copies' batches
        return kept

    def perturbation(self) -> dict[str, Any] | None:
        """The explainers' `perturbation` options for occlusion or RISE, else None."""
        chunk = {"batch_size": self.sweep_batch}
        if self.method == "occlusion":
            return {"window": self.window, "stride": self.stride, **chunk}
        if self.method == "rise":
            return {"n_masks": self.n_masks, "cell": self.cell, "p": self.keep_probability, **chunk}
        return None


_PERTURBATION_FIELDS = {
    "occlusion": ("window", "stride", "sweep_batch"),
    "rise": ("n_masks", "cell", "keep_probability", "sweep_batch"),
}
