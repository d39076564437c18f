"""Every former module path still imports, as the module at its new path, with a warning that
names the new path."""

from __future__ import annotations

import importlib
import sys

import pytest

import mmcam
from mmcam._moved import MOVED


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


def test_the_studies_import_from_their_former_place_in_runs():
    sys.modules.pop("mmcam.runs.sanity", None)
    with pytest.warns(DeprecationWarning, match="mmcam.runs.sanity moved to mmcam.studies.sanity"):
        from mmcam.runs.sanity import classifier_rows
    from mmcam.studies.sanity import classifier_rows as moved

    assert classifier_rows is moved
