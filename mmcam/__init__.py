"""mmcam: what image captioners and VQA models look at.

The package's layers, each importing only the ones below it: `core` (Tap, targets,
Explanation), `methods` (CAM formulas, pixel-space and perturbation methods), `explainers`
(captioning, VQA, Hugging Face adapters), `evaluation` (metrics), `boxes` (boxes from maps),
`data` (formats), `zoo` (reference models), `runs` (dataset runs) and `app` (the demo's logic).
"""

import importlib
from types import ModuleType

from mmcam import _moved
from mmcam.core.explanation import Explanation
from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.core.tap import Tap, Taps
from mmcam.core.targets import CaptionLogProb, CaptionWords, ClassLogit, ClassLogits, WordLogProb
from mmcam.explainers.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explainers.vqa import VQAExplainer, VQAExplanation
from mmcam.methods.activation_maximization import activation_maximization, filter_grid
from mmcam.methods.cam import class_activation_map, explain, fused_maps, grad_cam
from mmcam.methods.perturbation import occlusion
from mmcam.methods.pixel_space import (
    deconvnet,
    guided_backprop,
    guided_grad_cam,
    strongest_feature_map,
)
from mmcam.methods.rise import rise
from mmcam.visualize import PanelRow, map_grid, overlay, save_overlay

_moved.install()  # former module paths (mmcam.explanation, ...) resolve, with a warning

__all__ = [
    "CaptionExplainer",
    "CaptionExplanation",
    "CaptionLogProb",
    "CaptionModel",
    "CaptionWords",
    "ClassLogit",
    "ClassLogits",
    "Explanation",
    "PanelRow",
    "Tap",
    "Taps",
    "VQAExplainer",
    "VQAExplanation",
    "VQAModel",
    "WordLogProb",
    "activation_maximization",
    "class_activation_map",
    "deconvnet",
    "explain",
    "filter_grid",
    "fused_maps",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "map_grid",
    "occlusion",
    "overlay",
    "rise",
    "save_overlay",
    "strongest_feature_map",
]


def __getattr__(name: str) -> ModuleType:
    """`mmcam.hf` and the other former module paths of `_moved.MOVED`, imported on first use."""
    if f"mmcam.{name}" in _moved.MOVED:
        return importlib.import_module(f"mmcam.{name}")
    raise AttributeError(f"module 'mmcam' has no attribute {name!r}")
