"""The randomisation check of the attention methods on a tiny BLIP: it reads the top layer as the
last module the forward runs, leaves out what cannot be re-initialised as built, and cannot be
fooled either way: a map that ignores the weights keeps a correlation of 1, relevance does not."""

from __future__ import annotations

import pytest
import torch
from hf_checkpoints import save_tiny_checkpoints

from mmcam.explainers.attention_stack import CaptionStackExplainer
from mmcam.explainers.hf import load_hf_captioner
from mmcam.methods import registry
from mmcam.studies.attention_sanity import caption_attention_sanity


def weight_blind(stack):
    """A 'map' that reads no weight: a ramp over the image tokens."""
    rows, keys = stack.rows.shape[0], stack.cross[0][0].shape[-1]
    return torch.arange(keys, dtype=torch.float32).expand(rows, keys)


@pytest.fixture
def blind_method():
    stack = CaptionStackExplainer.explainer_id
    method = registry.Method("weight_blind", "Weight-blind ramp", "attention", weight_blind,
                             frozenset({stack}))  # fmt: skip
    registry.register(method)
    yield method.id
    registry.unregister(method.id)


def test_a_map_blind_to_the_weights_keeps_its_correlation_and_relevance_loses_it(
    tmp_path, blind_method
):
    captioner = load_hf_captioner(str(save_tiny_checkpoints(tmp_path)["blip"]))
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    found = caption_attention_sanity(captioner, images, [blind_method, "relevance"])
    assert found.top_layer == "model.text_decoder.cls.predictions.decoder"
    assert "model.vision_model.embeddings" in found.skipped  # class / position parameters
    assert found.words >= 2
    assert found.after_top[blind_method] == pytest.approx(1.0)
    assert found.after_all[blind_method] == pytest.approx(1.0)
    assert found.after_all["relevance"] < 0.9
