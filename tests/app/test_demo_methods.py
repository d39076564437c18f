"""The demo's method lists are the explainers': a method registered anywhere is offered by the
demo (its id the value, its display name the label) and maps through the explainers."""

from __future__ import annotations

import numpy as np
import pytest

from mmcam.app import Demo, InputError, bundled_examples
from mmcam.data.images import load_image, preprocess
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.methods import registry
from mmcam.methods.formulas import gradcam


def doubled_gradcam(activations, gradients):
    """A test method: twice Grad-CAM's signed map."""
    return 2 * gradcam(activations, gradients)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return Demo.load(work_dir=tmp_path_factory.mktemp("downloads"))


@pytest.fixture
def doubled():
    record = registry.Method(
        "doubled", "Doubled Grad-CAM", "gradient", doubled_gradcam, frozenset({"captions"})
    )
    registry.register(record)
    yield record
    registry.unregister(record.id)


def test_the_demo_offers_the_explainers_methods_by_id_with_their_names(demo):
    for task in ("captions", "vqa"):
        assert demo.methods(task) == registry.ids(explainer=task)
        assert demo.choices(task)[0] == ("Grad-CAM", "gradcam")
    assert ("Guided Grad-CAM", "guided_gradcam") in demo.choices("vqa")


def test_a_newly_registered_method_is_offered_by_the_demo_and_maps(demo, doubled):
    assert demo.methods("captions")[-1] == "doubled"
    assert ("Doubled Grad-CAM", "doubled") in demo.choices("captions")
    assert "doubled" not in demo.methods("vqa")  # registered for the caption explainer only
    path = bundled_examples()[0].image
    shown = demo.caption(path, "doubled", 0)  # by id, as the page sends it
    assert shown.method == "Doubled Grad-CAM"
    images = preprocess(load_image(path))[None]
    expected = CaptionExplainer(demo.captioner, demo.captioner.explained_layer).explain(images)
    # twice Grad-CAM's map, normalised to [0, 1]: Grad-CAM's normalised map
    np.testing.assert_allclose(shown.word_maps, expected.words.maps[0], atol=1e-6)
    with pytest.raises(InputError, match="Doubled Grad-CAM is offered for other models"):
        demo.answer(path, bundled_examples()[0].questions[0], "doubled")
