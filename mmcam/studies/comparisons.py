"""The methods the comparison scripts (`scripts/compare_boxes.py`, `compare_faithfulness.py`) run
side by side on the bundled models, read from the method registry: the CAMs the sanity checks
judged, the default method at its chosen layer, guided backprop, and the perturbation methods."""

from __future__ import annotations

import dataclasses

from mmcam.boxes.settings import default_method
from mmcam.methods import registry
from mmcam.runs.models import ExplainedModel
from mmcam.runs.tasks import get

__all__ = ["compared_cams", "compared_methods", "compared_model", "compared_perturbations"]


def compared_cams() -> list[str]:
    """The gradient (CAM) methods the sanity checks judged, passed or not (the ones compared
    and chosen among): gradcam, gradcam++, hirescam, layercam for the bundled methods."""
    return [m.id for m in registry.methods(kind="gradient") if m.sanity is not None]


def compared_perturbations() -> list[str]:
    """The perturbation methods: occlusion, rise for the bundled methods."""
    return registry.ids(kind="perturbation")


def compared_methods(fusion: str | None = None) -> list[tuple[str, str | None]]:
    """(method, layer) of every method the comparison scripts run side by side: the CAMs at the
    bundled models' own layer (None), the default method at the layer chosen for it
    ("chosen"), LayerCAM fused over `fusion` when given, guided backprop, the perturbations."""
    runs: list[tuple[str, str | None]] = [(method, None) for method in compared_cams()]
    runs.append((default_method().method, "chosen"))
    if fusion:
        runs.append(("layercam", fusion))
    runs.append(("guided_backprop", None))
    return runs + [(method, None) for method in compared_perturbations()]


def compared_model(task: str, method: str, layer: str | None) -> ExplainedModel | None:
    """The bundled model of `task` ("captions", "vqa") read at `layer` (None: its own; "chosen":
    the default method's layer for it); None when no layer was chosen for this model, where its
    own-layer row is the default's."""
    load = get(task).load_model
    if layer != "chosen":
        return load(layer=layer)
    model = load()
    chosen = default_method().layer_for(model.model, method)
    return None if chosen is None else dataclasses.replace(model, layer=chosen)
