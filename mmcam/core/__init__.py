"""The engine every method stands on: Tap (hook one layer), targets (what scalar is explained),
Explanation (the result), model state, the model protocols, and `box` (the Box and the map-to-pixels
steps that box making and the box metrics share). Imports nothing of mmcam (torch, numpy, scipy)."""

from mmcam.core.explanation import Explanation
from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.core.tap import Tap, Taps
from mmcam.core.targets import CaptionLogProb, ClassLogit, WordLogProb

__all__ = [
    "CaptionLogProb",
    "CaptionModel",
    "ClassLogit",
    "Explanation",
    "Tap",
    "Taps",
    "VQAModel",
    "WordLogProb",
]
