"""Every former module path still imports, as the module at its new path, and every former name
of a package (`mmcam.evaluation.refined_box`) still resolves, with a warning that names the new
place."""

from __future__ import annotations

import importlib
import sys

import pytest

import mmcam
from mmcam._moved import MOVED, MOVED_NAMES


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_imports_from_its_old_path_with_a_warning_naming_the_new(old):
    new = MOVED[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert sys.modules[old] is module


def test_names_are_imported_from_an_old_path_as_before():
    sys.modules.pop("mmcam.explanation", None)
    with pytest.warns(DeprecationWarning, match="mmcam.core.explanation"):
        from mmcam.explanation import Explanation
    assert Explanation is mmcam.Explanation


def test_a_name_that_never_existed_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("mmcam.no_such_module")
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        _ = mmcam.no_such_module


@pytest.mark.parametrize(
    ("package", "name"), sorted((p, n) for p, names in MOVED_NAMES.items() for n in names)
)
def test_a_moved_name_resolves_from_its_old_package_with_a_warning_naming_the_new(package, name):
    new = MOVED_NAMES[package][name]
    with pytest.warns(DeprecationWarning, match=f"{package}.{name} moved to {new}.{name}"):
        found = getattr(importlib.import_module(package), name)
    assert found is getattr(importlib.import_module(new), name)


def test_the_box_names_the_readme_used_still_come_from_mmcam_evaluation():
    import mmcam.boxes
    import mmcam.evaluation as ev

    with pytest.warns(DeprecationWarning, match="mmcam.boxes"):
        named = (ev.refined_box, ev.box_settings, ev.map_boxes, ev.box_evidence, ev.boxes_from_map)
    assert named == (
        mmcam.boxes.refined_box,
        mmcam.boxes.box_settings,
        mmcam.boxes.map_boxes,
        mmcam.boxes.box_evidence,
        mmcam.boxes.boxes_from_map,
    )


def test_a_moved_function_keeps_its_name_after_its_old_module_path_is_imported():
    # mmcam.evaluation.box_settings was both a module and the function the package re-exported;
    # the attribute was the function, and importing the old module path must not rebind it
    import mmcam.boxes
    import mmcam.evaluation as ev

    sys.modules.pop("mmcam.evaluation.box_settings", None)
    with pytest.warns(DeprecationWarning):
        module = importlib.import_module("mmcam.evaluation.box_settings")
        function = ev.box_settings
    assert module is mmcam.boxes.settings
    assert function is mmcam.boxes.box_settings


def test_a_name_that_never_existed_in_a_package_with_moved_names_is_still_an_attribute_error():
    import mmcam.evaluation as ev

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = ev.no_such_name


def test_the_studies_import_from_their_former_place_in_runs():
    sys.modules.pop("mmcam.runs.sanity", None)
    with pytest.warns(DeprecationWarning, match="mmcam.runs.sanity moved to mmcam.studies.sanity"):
        from mmcam.runs.sanity import classifier_rows
    from mmcam.studies.sanity import classifier_rows as moved

    assert classifier_rows is moved
