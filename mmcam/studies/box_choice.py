"""Choose each method's box settings on a split (`scripts/choose_boxes.py`).

For every method (and layer) and both tasks, a dataset run (`explain_captions`,
`explain_vqa`) maps the val items; each map that names an object with a ground-truth box is
then boxed by every candidate: the map's own box at each threshold of the run's sweep, and the
refined box (map + image) at each pair of seeds. A method's setting is the candidate with the
highest localisation accuracy (IoU >= 0.5) averaged over the tasks and layers it was run at, so
one setting serves captions and VQA alike; no candidate knows anything about the objects
(sizes, shapes, colours). The table goes to `models/box_settings.json`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcam.boxes.refine import RefineSettings, refined_box
from mmcam.boxes.settings import BoxSettings
from mmcam.data.images import load_image
from mmcam.evaluation.box_metrics import DEFAULT_THRESHOLDS, box_iou
from mmcam.runs.outputs import read_map
from mmcam.runs.report import SWEEP
from mmcam.runs.tasks import get

__all__ = ["Candidates", "Scored", "choose_default", "choose_settings", "score_run"]


@dataclass(frozen=True)
class Candidates:
    """The settings tried: the map's own box at `thresholds`, the refined box at every
    (seed, support) pair with support < seed."""

    thresholds: Sequence[float] = tuple(SWEEP)
    seeds: Sequence[float] = (0.5, 0.8)
    supports: Sequence[float] = (0.05, 0.2)

    def refinements(self) -> list[RefineSettings]:
        return [
            RefineSettings(seed=seed, support=support)
            for seed, support in itertools.product(self.seeds, self.supports)
            if support < seed
        ]


@dataclass
class Scored:
    """One run's hits per candidate: `threshold[t]` and `refined[(seed, support)]` count the
    maps whose box has IoU >= 0.5 with a ground-truth box, out of `count`; `seconds` is the
    refinement's mean cost per map."""

    count: int
    threshold: dict[float, int]
    refined: dict[tuple[float, float], int]
    refine_seconds: float

    def accuracy(self, key: float | tuple[float, float]) -> float:
        hits = self.refined[key] if isinstance(key, tuple) else self.threshold[key]
        return hits / self.count if self.count else 0.0


def _scored_maps(out: Path, task: str) -> list[tuple[int, int, dict, dict]]:
    """(map key, row of the stored maps, its scores, its record) of every map of a finished
    run that names an object present in its image."""
    found = []
    for line in (out / "items.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, row, scored in get(task).scored_maps(record):
            if scored.get("gt_boxes"):
                found.append((key, row, scored, record))
    return found


def score_run(
    out: str | Path, task: str, image_file: Callable[[int], Path], candidates: Candidates
) -> Scored:
    """Every candidate's hits over the maps of the finished run in `out` (`task`: "captions"
    or "vqa"); `image_file(image_id)` is the original image."""
    out = Path(out)
    found = _scored_maps(out, task)
    threshold = {t: 0 for t in candidates.thresholds}
    index = {round(float(t), 2): i for i, t in enumerate(DEFAULT_THRESHOLDS)}
    refinements = candidates.refinements()
    refined = {(r.seed, r.support): 0 for r in refinements}
    seconds = 0.0
    for key, row, scored, record in found:
        for t in candidates.thresholds:
            threshold[t] += scored["box_hits"][index[round(t, 2)]]
        image = load_image(image_file(record["image_id"]))
        size = (image.height, image.width)
        heat = read_map(out, key, size).maps[row]
        truth = scored["gt_boxes"]
        for settings in refinements:
            start = time.perf_counter()
            box = refined_box(image, heat, settings)
            seconds += time.perf_counter() - start
            if box is not None and max(box_iou(box.to_list(), t) for t in truth) >= 0.5:
                refined[(settings.seed, settings.support)] += 1
    calls = len(found) * len(refinements)
    return Scored(len(found), threshold, refined, seconds / calls if calls else 0.0)


def choose_settings(runs: Sequence[Scored]) -> tuple[BoxSettings, dict[str, Any]]:
    """The best candidate over `runs` (one method's runs: tasks x layers), by localisation
    accuracy averaged over the runs; and the figures behind the choice. The refined box is the
    default when its best mean is at least the map's own best."""

    def mean(key: float | tuple[float, float]) -> float:
        return float(np.mean([run.accuracy(key) for run in runs]))

    best_t = max(runs[0].threshold, key=lambda t: (mean(t), -abs(t - 0.15)))
    best_r = max(runs[0].refined, key=mean)
    refine = mean(best_r) >= mean(best_t)
    settings = BoxSettings(
        threshold=float(best_t),
        boxes="refined" if refine else "threshold",
        seed=best_r[0],
        support=best_r[1],
    )
    return settings, {"threshold": mean(best_t), "refined": mean(best_r)}


def choose_default(accuracy: dict[tuple[str, str, str], float]) -> dict[str, Any]:
    """The default method and its layer per architecture, from the accuracy of each (method,
    layer, architecture)'s default boxes: each architecture gets the method's best layer, and
    the method with the highest mean over the architectures of those bests wins (ties: the
    first). Returns ``{"method": ..., "layers": {architecture: layer}}``."""
    best: dict[str, dict[str, tuple[float, str]]] = {}
    for (method, layer, architecture), value in accuracy.items():
        layers = best.setdefault(method, {})
        if architecture not in layers or value > layers[architecture][0]:
            layers[architecture] = (value, layer)
    method = max(best, key=lambda m: np.mean([value for value, _ in best[m].values()]))
    return {"method": method, "layers": {a: layer for a, (_, layer) in best[method].items()}}
