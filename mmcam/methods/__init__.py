"""How a map is made: the CAM formulas and `grad_cam` / `explain`, pixel-space rules (guided
backprop, deconvnet, guided Grad-CAM), occlusion and RISE, activation maximisation. Imports core,
and visualize for activation maximisation's filter grid."""

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

__all__ = [
    "activation_maximization",
    "class_activation_map",
    "deconvnet",
    "explain",
    "filter_grid",
    "fused_maps",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "occlusion",
    "rise",
    "strongest_feature_map",
]


def __getattr__(name: str) -> object:
    """`GRADIENT_METHODS`, read from the registry (deprecated: use `registry.methods`)."""
    if name == "GRADIENT_METHODS":
        from mmcam.methods import formulas

        return formulas.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
