"""Former import paths of modules that moved, kept working for a release.

`import mmcam.explanation` (and `from mmcam.explanation import Explanation`) gives the module
at its new path, `mmcam.core.explanation`, with a DeprecationWarning naming it. A move adds its
old and new dotted paths to `MOVED`; the finder answers for those names only, so no other import
is touched. Importing mmcam installs the finder once (`install`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old path -> new path; the paths the 0.2 layout named (README, model cards, tests) and later moves
MOVED = {
    "mmcam.activation_maximization": "mmcam.methods.activation_maximization",
    "mmcam.benchmarking": "mmcam.studies.benchmarking",
    "mmcam.cam": "mmcam.methods.cam",
    "mmcam.captioner": "mmcam.zoo.captioner",
    "mmcam.captioning": "mmcam.explainers.captioning",
    "mmcam.cross_attention": "mmcam.explainers.cross_attention",
    "mmcam.dataset_report": "mmcam.runs.report",
    "mmcam.dataset_runs": "mmcam.runs.run",
    "mmcam.datasets": "mmcam.data.annotations",
    "mmcam.evaluation.box_evidence": "mmcam.boxes.evidence",
    "mmcam.evaluation.box_settings": "mmcam.boxes.settings",
    "mmcam.evaluation.localize": "mmcam.boxes.from_maps",
    "mmcam.evaluation.refine": "mmcam.boxes.refine",
    "mmcam.explanation": "mmcam.core.explanation",
    "mmcam.hf": "mmcam.explainers.hf",
    "mmcam.interactive": "mmcam.app.demo",
    "mmcam.layer_output": "mmcam.methods.layer_output",
    "mmcam.localize": "mmcam.boxes.from_maps",
    "mmcam.metrics": "mmcam.evaluation.box_metrics",
    "mmcam.model_state": "mmcam.core.model_state",
    "mmcam.perturbation": "mmcam.methods.perturbation",
    "mmcam.pixel_methods": "mmcam.methods.pixel_space",
    "mmcam.protocols": "mmcam.core.protocols",
    "mmcam.runner": "mmcam.runs.chunks",
    "mmcam.runs.benchmarking": "mmcam.studies.benchmarking",
    "mmcam.runs.box_choice": "mmcam.studies.box_choice",
    "mmcam.runs.sanity": "mmcam.studies.sanity",
    "mmcam.runs.sanity_boxes": "mmcam.studies.sanity_boxes",
    "mmcam.runs.sanity_report": "mmcam.studies.sanity_report",
    "mmcam.runs.shapes_report": "mmcam.studies.shapes_report",
    "mmcam.sample_figures": "mmcam.app.sample_figures",
    "mmcam.shapes": "mmcam.data.shapes",
    "mmcam.show_and_tell": "mmcam.zoo.show_and_tell",
    "mmcam.tap": "mmcam.core.tap",
    "mmcam.targets": "mmcam.core.targets",
    "mmcam.training": "mmcam.zoo.training",
    "mmcam.vocab": "mmcam.data.vocab",
    "mmcam.vqa": "mmcam.explainers.vqa",
    "mmcam.vqa_model": "mmcam.zoo.vqa_model",
    "mmcam.word_baselines": "mmcam.explainers.word_baselines",
    "mmcam.word_categories": "mmcam.evaluation.word_categories",
}

# the names mmcam.evaluation re-exported until box making moved to mmcam.boxes
_BOX_NAMES = (
    "Box", "BoxEvidence", "BoxSettings", "DefaultMethod", "MapBoxes", "RefineSettings",
    "box_evidence", "box_settings", "boxes_from_map", "boxes_from_maps", "default_method",
    "is_flat", "map_boxes", "refined_box", "refined_boxes", "resize_map", "smooth_maps",
)  # fmt: skip

# package -> {former name: the package that holds it now}; `MovedNames` answers for them
MOVED_NAMES = {"mmcam.evaluation": dict.fromkeys(_BOX_NAMES, "mmcam.boxes")}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the names of `MOVED` and loads each as its new module (the same module object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder; exec_module puts the new module in its place

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {new}; the old path goes in a later release",
            DeprecationWarning,
            stacklevel=2,
        )
        sys.modules[module.__name__] = importlib.import_module(new)


class MovedNames(ModuleType):
    """A package some of whose names moved: `package.name` gives the name from its new package
    with a DeprecationWarning naming it, and a former submodule path (`MOVED`) is imported on first
    use. A moved name that is also a former submodule's name (`mmcam.evaluation.box_settings`, the
    function and the module) stays the function, as it was before the move: importing the old
    module path does not rebind it."""

    def __getattr__(self, name: str) -> object:
        new = MOVED_NAMES.get(self.__name__, {}).get(name)
        if new is not None:
            warnings.warn(
                f"{self.__name__}.{name} moved to {new}.{name}; the old name goes in a later "
                "release",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(new), name)
        if f"{self.__name__}.{name}" in MOVED:
            return importlib.import_module(f"{self.__name__}.{name}")
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, ModuleType) and name in MOVED_NAMES.get(self.__name__, {}):
            return  # the import system binding a former submodule path: the moved name wins
        super().__setattr__(name, value)


def keep_moved_names(package: str) -> None:
    """Make `package` (already in `sys.modules`) answer for its names in `MOVED_NAMES`."""
    sys.modules[package].__class__ = MovedNames


def install() -> None:
    """Put the finder on `sys.meta_path` unless it is there already."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
