"""The demo over transformers with an attention stack (tiny BLIP and ViLT checkpoints): it offers
the attention methods, its maps are the attention-stack explainer's, and ViLT's answers show
which question words they used."""

from __future__ import annotations

import pytest
import torch
from hf_checkpoints import save_tiny_checkpoints

from mmcam.app import Demo
from mmcam.core.bundled import bundled_file
from mmcam.data.images import load_image
from mmcam.explainers.attention_stack import CaptionStackExplainer, VQAStackExplainer
from mmcam.methods import registry

IMAGE = bundled_file("samples", "shapes_1.png")
ATTENTION = [m.id for m in registry.methods(kind=registry.ATTENTION)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    hf = save_tiny_checkpoints(tmp_path_factory.mktemp("hf"))
    return Demo.load(hf_captioner=str(hf["blip"]), hf_vqa=str(hf["vilt"]))


def test_the_attention_methods_are_offered_beside_the_patch_token_ones(demo):
    for task in ("captions", "vqa"):
        offered = demo.methods(task)
        assert "gradcam" in offered and set(ATTENTION) <= set(offered)
        assert len(offered) == len(set(offered))


def test_caption_maps_by_relevance_are_the_attention_stack_explainers(demo):
    result = demo.caption(str(IMAGE), method="relevance", refine=False)
    inputs = demo.preprocess_image(load_image(IMAGE))[None]
    caption = demo.caption_explainer.generate(inputs)[0]
    stack = CaptionStackExplainer(
        demo.captioner, demo.captioner.attention_layout(), demo.captioner.to_grid
    )
    alone = stack.explain(inputs, [caption], method="relevance")
    assert result.words == alone.word_labels(0)
    torch.testing.assert_close(result.word_maps, alone.words.maps[0, : len(result.words)])


def test_vilt_answers_show_the_question_words_they_used(demo):
    question = "what color is the circle"
    result = demo.answer(str(IMAGE), question, method="relevance", refine=False)
    words = [word for word, _ in result.question_relevance]
    assert words == question.split()  # [CLS], [SEP] and padding left out
    values = [value for _, value in result.question_relevance]
    assert all(0 <= value <= 1 for value in values) and max(values) == pytest.approx(1.0)
    inputs = demo.vqa_preprocess(load_image(IMAGE))[None]
    stack = VQAStackExplainer(
        demo.vqa_model, demo.vqa_model.attention_layout(), demo.vqa_model.to_grid
    )
    alone = stack.explain(inputs, [question], top_k=5, method="relevance")
    row = alone.answers[0].index(result.selected)
    expected = alone.question_relevance[0, row, 1 : 1 + len(words)].clamp(min=0)
    torch.testing.assert_close(torch.tensor(values), expected / expected.max())
    assert demo.answer(str(IMAGE), question, method="gradcam").question_relevance is None
