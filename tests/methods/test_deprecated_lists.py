"""The hand-kept method lists of earlier releases still import, read from the registry, with a
DeprecationWarning naming what replaces them, and hold what they held."""

from __future__ import annotations

import importlib

import pytest

from mmcam.methods import formulas, registry
from mmcam.methods.perturbation import occlusion
from mmcam.methods.rise import rise

OLD_LISTS = {
    ("mmcam.methods.formulas", "GRADIENT_METHODS"): {
        "gradcam": formulas.gradcam,
        "gradcam++": formulas.gradcam_plus_plus,
        "counterfactual": formulas.counterfactual,
        "hirescam": formulas.hirescam,
        "layercam": formulas.layercam,
    },
    ("mmcam.methods", "GRADIENT_METHODS"): None,  # the same as formulas'
    ("mmcam.methods.pixel_space", "RULE_METHODS"): {
        "guided_backprop": "guided",
        "deconvnet": "deconvnet",
    },
    ("mmcam.methods.pixel_space", "PERTURBATION_METHODS"): {"occlusion": occlusion, "rise": rise},
    ("mmcam.methods.pixel_space", "EXPLAINER_METHODS"): (
        "gradcam",
        "gradcam++",
        "counterfactual",
        "hirescam",
        "layercam",
        "guided_backprop",
        "deconvnet",
        "occlusion",
        "rise",
    ),  # fmt: skip
    ("mmcam.methods.pixel_space", "PIXEL_SPACE_METHODS"): (
        "guided_backprop",
        "deconvnet",
        "occlusion",
        "rise",
    ),  # fmt: skip
    ("mmcam.app.inputs", "ANY_MODEL_METHODS"): (
        "gradcam",
        "gradcam++",
        "counterfactual",
        "hirescam",
        "layercam",
        "occlusion",
        "rise",
    ),  # fmt: skip
    ("mmcam.app.inputs", "METHODS"): {
        "Grad-CAM": "gradcam",
        "Grad-CAM++": "gradcam++",
        "Counterfactual": "counterfactual",
        "HiResCAM": "hirescam",
        "LayerCAM": "layercam",
        "Guided backprop": "guided_backprop",
        "Deconvnet": "deconvnet",
        "Guided Grad-CAM": "guided_gradcam",
        "Occlusion": "occlusion",
        "RISE": "rise",
    },  # fmt: skip
    ("mmcam.app", "METHODS"): None,  # the same as inputs'
}


@pytest.mark.parametrize(("module", "name"), list(OLD_LISTS))
def test_a_former_method_list_imports_with_a_warning_and_its_contents(module, name):
    with pytest.warns(DeprecationWarning, match=f"{name} is deprecated .* method registry"):
        value = getattr(importlib.import_module(module), name)
    expected = OLD_LISTS[(module, name)]
    if expected is not None:
        assert value == expected
    assert isinstance(value, dict | tuple) and len(value) > 0


def test_a_former_list_grows_with_the_registry():
    record = registry.Method("extra", "Extra", "gradient", formulas.gradcam, frozenset({"vqa"}))
    registry.register(record)
    try:
        with pytest.warns(DeprecationWarning):
            assert "extra" in formulas.GRADIENT_METHODS
    finally:
        registry.unregister("extra")


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NO_SUCH_LIST'"):
        formulas.NO_SUCH_LIST  # noqa: B018
