"""The options of a dataset run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    pointing_tolerance: float = 15.0
    deletion_steps: int = 20  # 0: no deletion AUC
    max_length: int = 20
    beam_size: int = 1
    top_k: int = 3
    batch_size: int = 16
    chunk_size: int = 64
    save_figures: int = 0  # figures of the first N items
    workers: int = 2
    progress: bool = True

    def stamp(self) -> dict:
        kept = asdict(self)
        for name in ("workers", "progress"):
            kept.pop(name)
        return kept
