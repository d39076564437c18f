"""mmcam: what image captioners and VQA models look at."""

from mmcam.cam import class_activation_map, explain, grad_cam
from mmcam.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explanation import Explanation
from mmcam.protocols import CaptionModel, VQAModel
from mmcam.tap import Tap
from mmcam.targets import CaptionLogProb, ClassLogit, WordLogProb
from mmcam.visualize import PanelRow, map_grid, overlay, save_overlay
from mmcam.vqa import VQAExplainer, VQAExplanation

__all__ = [
    "CaptionExplainer",
    "CaptionExplanation",
    "CaptionLogProb",
    "CaptionModel",
    "ClassLogit",
    "Explanation",
    "PanelRow",
    "Tap",
    "VQAExplainer",
    "VQAExplanation",
    "VQAModel",
    "WordLogProb",
    "class_activation_map",
    "explain",
    "grad_cam",
    "map_grid",
    "overlay",
    "save_overlay",
]
