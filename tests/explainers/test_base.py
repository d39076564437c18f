"""The explainer base: methods come from the registry, dispatch is by kind, the model comes back
as it went in."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyVQA

from mmcam.core.targets import ClassLogit, WordLogProb
from mmcam.explainers import (
    CaptionAttentionExplainer,
    CaptionExplainer,
    Explainer,
    VQAAttentionExplainer,
    VQAExplainer,
)
from mmcam.explainers.rows import caption_tokens, teacher_forced
from mmcam.methods import registry
from mmcam.methods.formulas import gradcam
from mmcam.methods.pixel_space import guided_grad_cam

LAYER = "encoder.features"
CAPTIONS = [[5, 7, 3, 9], [4, 6]]
QUESTIONS = ["what color", "is it left of the thing"]


def doubled_gradcam(activations, gradients):
    """A test method: twice Grad-CAM's signed map."""
    return 2 * gradcam(activations, gradients)


@pytest.fixture
def doubled():
    """A gradient method registered for the caption and VQA explainers, removed afterwards."""
    record = registry.register(
        registry.Method("doubled", "Doubled Grad-CAM", "gradient", doubled_gradcam,
                        frozenset({"captions", "vqa"}))
    )  # fmt: skip
    yield record
    registry.unregister(record.id)


@pytest.fixture(scope="module")
def vqa():
    torch.manual_seed(2)
    return TinyVQA().eval()


def test_a_registered_method_is_offered_and_runs_through_the_explainers(
    doubled, captioner, images, vqa
):
    assert "doubled" not in CaptionAttentionExplainer.offered()
    for explainer_type in (CaptionExplainer, VQAExplainer):
        assert explainer_type.offered()[-1] == "doubled"
    caption = CaptionExplainer(captioner, LAYER)
    ours = caption.explain(images, CAPTIONS, method="doubled")
    theirs = caption.explain(images, CAPTIONS, method="gradcam")
    torch.testing.assert_close(ours.words.raw, 2 * theirs.words.raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.caption.raw, 2 * theirs.caption.raw, atol=1e-6, rtol=0)
    assert ours.words.method == "doubled"
    answered = VQAExplainer(vqa, "image.features").explain(images, QUESTIONS, method="doubled")
    expected = VQAExplainer(vqa, "image.features").explain(images, QUESTIONS)
    torch.testing.assert_close(answered.maps.raw, 2 * expected.maps.raw, atol=1e-6, rtol=0)
    registry.unregister("doubled")
    with pytest.raises(ValueError, match="unknown method 'doubled'; choose one of gradcam"):
        caption.explain(images, CAPTIONS, method="doubled")
    registry.register(doubled)  # for the fixture to remove


def test_an_unknown_or_unoffered_method_gets_the_registrys_error(captioner, images, vqa):
    caption = CaptionExplainer(captioner, LAYER)
    with pytest.raises(ValueError, match="unknown method 'gradcam3'; choose one of gradcam, "):
        caption.explain(images, CAPTIONS, method="gradcam3")
    with pytest.raises(ValueError, match=r"Attention Grad-CAM .attention_gradcam. is not"):
        VQAExplainer(vqa, "image.features").explain(images, QUESTIONS, method="attention_gradcam")
    with pytest.raises(ValueError, match="Grad-CAM .gradcam. is not offered for cross_attention"):
        CaptionAttentionExplainer(captioner, LAYER, (2, 2)).explain(
            images, CAPTIONS, method="gradcam"
        )
    with pytest.raises(ValueError, match="perturbation options .window. are for occlusion"):
        caption.explain(images, CAPTIONS, method="hirescam", perturbation={"window": 4})


def test_a_kind_the_explainer_does_not_implement_is_refused():
    class Bare(Explainer):
        explainer_id = "captions"

    record = registry.get("occlusion", "captions")
    with pytest.raises(NotImplementedError, match="Bare runs no perturbation methods"):
        Bare().dispatch(record)


def test_a_former_id_runs_with_a_deprecation_warning(captioner, images):
    caption = CaptionExplainer(captioner, LAYER)
    with pytest.warns(DeprecationWarning, match="'guided_grad_cam' is now called 'guided_gradcam'"):
        old = caption.explain(images, CAPTIONS, method="guided_grad_cam")
    new = caption.explain(images, CAPTIONS, method="guided_gradcam")
    assert torch.equal(old.words.raw, new.words.raw) and new.words.method == "guided_gradcam"


def test_guided_gradcam_of_each_word_and_answer_is_the_methods_guided_gradcam(
    captioner, images, vqa
):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS, method="guided_gradcam")
    tokens, counts = caption_tokens(CAPTIONS, 1, 2, 0, torch.device("cpu"))
    for position in (0, 1):
        word = guided_grad_cam(
            teacher_forced(captioner), images, WordLogProb(tokens, counts, position), captioner,
            LAYER, forward_args=(tokens, counts),
        )  # fmt: skip
        torch.testing.assert_close(result.words.raw[:, position], word.raw, atol=1e-6, rtol=0)
        torch.testing.assert_close(result.words.maps[:, position], word.maps, atol=1e-5, rtol=0)
    answered = VQAExplainer(vqa, "image.features").explain(
        images, QUESTIONS, top_k=2, method="guided_gradcam"
    )
    indices = [[vqa.answers.index(a) for a in row] for row in answered.answers]
    for rank in (0, 1):
        expected = guided_grad_cam(
            vqa, images, ClassLogit([row[rank] for row in indices]), vqa, "image.features",
            forward_args=(vqa.tokenize(QUESTIONS),),
        )  # fmt: skip
        torch.testing.assert_close(answered.maps.raw[:, rank], expected.raw, atol=1e-6, rtol=0)


def _state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [p.grad for p in model.parameters()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    )


@pytest.mark.parametrize("method", ["gradcam", "guided_gradcam", "deconvnet", "occlusion"])
def test_the_models_state_and_hooks_come_back_unchanged(captioner, images, vqa, method):
    captioner.train(), captioner.encoder.eval(), vqa.train(), vqa.image.eval()  # mixed modes
    captioner.embed.weight.requires_grad_(False)  # one frozen part
    before = _state(captioner), _state(vqa)
    options = {"window": 4} if method == "occlusion" else None
    CaptionExplainer(captioner, LAYER).explain(
        images, CAPTIONS, method=method, perturbation=options
    )
    VQAExplainer(vqa, "image.features").explain(
        images, QUESTIONS, method=method, perturbation=options
    )
    assert (_state(captioner), _state(vqa)) == before
    with pytest.raises(ValueError):  # also when the explanation fails
        CaptionExplainer(captioner, LAYER).explain(images, [[5], []], method=method)
    assert _state(captioner) == before[0]
    captioner.eval(), vqa.eval(), captioner.embed.weight.requires_grad_(True)


def test_the_attention_explainers_are_explainers():
    assert issubclass(CaptionAttentionExplainer, Explainer)
    assert issubclass(VQAAttentionExplainer, Explainer)
    assert CaptionAttentionExplainer.offered() == ["attention_gradcam"]
