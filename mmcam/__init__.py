"""mmcam: what image captioners and VQA models look at."""

from mmcam.activation_maximization import activation_maximization, filter_grid
from mmcam.cam import class_activation_map, explain, grad_cam
from mmcam.captioning import CaptionExplainer, CaptionExplanation
from mmcam.explanation import Explanation
from mmcam.perturbation import occlusion
from mmcam.pixel_methods import deconvnet, guided_backprop, guided_grad_cam, strongest_feature_map
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
    "activation_maximization",
    "class_activation_map",
    "deconvnet",
    "explain",
    "filter_grid",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "map_grid",
    "occlusion",
    "overlay",
    "save_overlay",
    "strongest_feature_map",
]
