"""The options of a dataset run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmcam.boxes.settings import BoxSettings
from mmcam.methods import registry
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
    batch_size: int = 16
    chunk_size: int = 64
    save_figures: int = 0  # figures of the first N items
    # the method's options by the names of its options dataclass's fields (the registry's
    # `Method.options`), e.g. {"window": 8} for occlusion; the others take their defaults
    method_options: dict[str, Any] = field(default_factory=dict)
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
        """The fields that change the outputs, with the method's options (all of them, defaults
        filled in) after `top_k`, as run.json has always kept them."""
        kept = asdict(self)
        kept["road_fractions"] = list(self.road_fractions)  # as run.json reads it back
        for name in ("workers", "progress", "overwrite", "method_options"):
            kept.pop(name)
        record = registry.get(self.method)
        chosen = record.stamp(record.make_options(self.method_options))
        names = list(kept)
        at = names.index("top_k") + 1
        kept = (
            {name: kept[name] for name in names[:at]}
            | chosen
            | {name: kept[name] for name in names[at:]}
        )
        if "sweep_batch" in chosen and chosen["sweep_batch"] is None:
            kept["sweep_chunking"] = chunking_policy()  # what decides the copies' batches
        return kept

    def perturbation(self) -> dict[str, Any] | None:
        """The explainers' `perturbation` options of a method that takes options (occlusion,
        RISE: its options dataclass's `kwargs()`), else None."""
        record = registry.get(self.method)
        if record.options is None:
            return None
        return record.make_options(self.method_options).kwargs()
