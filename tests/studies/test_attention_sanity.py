"""The randomisation check of the attention methods on a tiny BLIP and a tiny ViLT: it reads the
top layer as the last module the forward runs, leaves out what cannot be re-initialised as
built, and cannot be fooled either way: a map that ignores the weights keeps a correlation of 1
in every order, relevance does not."""

from __future__ import annotations

import pytest
import torch
from hf_checkpoints import save_tiny_checkpoints

from mmcam.explainers.attention_stack import CaptionStackExplainer, VQAStackExplainer
from mmcam.explainers.hf import load_hf_captioner, load_hf_vqa
from mmcam.methods import registry
from mmcam.studies.attention_sanity import caption_attention_sanity, vqa_attention_sanity


def weight_blind(stack):
    """A 'map' that reads no weight: a ramp over the image tokens."""
    rows, keys = stack.rows.shape[0], stack.last()[0].shape[-1]
    return torch.arange(keys, dtype=torch.float32).expand(rows, keys)


@pytest.fixture
def blind_method():
    stacks = frozenset({CaptionStackExplainer.explainer_id, VQAStackExplainer.explainer_id})
    method = registry.Method("weight_blind", "Weight-blind ramp", "attention", weight_blind,
                             stacks)  # fmt: skip
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
    assert found.targets >= 2
    for order in (found.after_top, found.after_all, found.independent):
        assert order[blind_method] == pytest.approx(1.0)
    assert found.after_all["relevance"] < 0.9
    assert found.independent["relevance"] >= found.after_top["relevance"]  # the top layer is one
    assert found.independent_layer[blind_method] in found.independent_layer.values()


def test_the_vqa_check_keeps_the_trained_answers_and_catches_a_weight_blind_map(
    tmp_path, blind_method
):
    vqa = load_hf_vqa(str(save_tiny_checkpoints(tmp_path)["vilt"]))
    torch.manual_seed(0)
    images = torch.randn(2, 3, 48, 48)
    questions = ["what color is the cat", "is there a dog"]
    found = vqa_attention_sanity(vqa, images, questions, [blind_method, "relevance"], top_k=2)
    assert found.top_layer == "model.classifier.3"
    assert found.targets == 4  # 2 answers of 2 questions
    for order in (found.after_top, found.after_all, found.independent):
        assert order[blind_method] == pytest.approx(1.0)
    assert found.after_all["relevance"] < 0.9
