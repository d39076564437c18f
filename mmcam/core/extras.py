"""Optional dependencies: the core install holds what the maps need; each other feature's
libraries come with an extra (`pip install "mmcam[boxes]"`), and using a feature whose extra is
missing says which extra to install.

| extra | libraries | for |
| --- | --- | --- |
| `boxes` | opencv-python-headless | boxes refined from the image (GrabCut) |
| `sanity` | scikit-image | the sanity checks' SSIM and HOG similarity |
| `coco` | pycocotools, pycocoevalcap | COCO AP and the caption metrics of dataset runs |
| `hf` | transformers | the Hugging Face adapters (BLIP, ViLT) |
| `demo` | gradio (and the `boxes` extra) | the demo |
| `all` | all of the above | |
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ModuleNotFoundError):
    """A feature's optional library is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`module`, imported; when it is not installed, a `MissingExtra` saying that `feature`
    needs it and which extra of mmcam installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not module.startswith(error.name):
            raise  # the library is there but something it imports is not: its own error
        raise MissingExtra(
            f"{feature} needs {module.split('.')[0]}, which mmcam installs with its "
            f'"{extra}" extra: pip install "mmcam[{extra}]"',
            name=error.name,
        ) from error
