"""Attention methods (raw attention, rollout, gradient-weighted attention, relevance) on tiny
random BLIP and ViLT configs with eager attention, each against a hand computation from
attention maps and gradients captured independently (output_attentions, torch.autograd.grad)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from test_hf import (  # noqa: F401 (fixtures)
    ANSWERS,
    CAPTIONS,
    QUESTIONS,
    WORDS,
    blip_processor,
    hooks,
    picture,
    tokenizer,
    vilt_processor,
)
from transformers import (
    BlipConfig,
    BlipForConditionalGeneration,
    ViltConfig,
    ViltForQuestionAnswering,
)

from mmcam.explainers.attention_stack import (
    CaptionStackExplainer,
    VQAStackExplainer,
)
from mmcam.explainers.hf.blip import BlipCaptioner
from mmcam.explainers.hf.vilt import ViltVQA
from mmcam.explainers.rows import caption_tokens
from mmcam.explainers.word_baselines import attention_maps_per_word
from mmcam.methods import registry

METHODS = ("attention", "rollout", "attention_gradcam", "relevance")
SPREAD = 0.5  # weights this spread make attention far from uniform, so maps differ by method


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def captioner(blip_processor):  # noqa: F811
    torch.manual_seed(0)
    tiny = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        initializer_range=SPREAD,
    )  # fmt: skip
    text = dict(
        tiny, vocab_size=len(WORDS), max_position_embeddings=32, bos_token_id=WORDS.index("[DEC]"),
        pad_token_id=0, sep_token_id=3, eos_token_id=3,
    )  # fmt: skip
    config = BlipConfig(
        text_config=text, vision_config=dict(tiny, image_size=32, patch_size=8),
        projection_dim=32, attn_implementation="eager",
    )  # fmt: skip
    return BlipCaptioner(BlipForConditionalGeneration(config).eval(), blip_processor)


@pytest.fixture(scope="module")
def vilt(vilt_processor):  # noqa: F811
    torch.manual_seed(2)
    config = ViltConfig(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=37, image_size=64, patch_size=16, max_position_embeddings=40,
        num_labels=len(ANSWERS), id2label=dict(enumerate(ANSWERS)), initializer_range=SPREAD,
        attn_implementation="eager",
    )  # fmt: skip
    return ViltVQA(ViltForQuestionAnswering(config).eval(), vilt_processor)


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(3)
    return torch.randn(2, 3, 32, 32)


def cam(attention, gradient):
    """Ā = mean over heads of (dY/dA * A)+ for one item: [Tq, Tk]."""
    return (gradient * attention).clamp(min=0).mean(0)


def normalized(matrix):
    """R̂ = (R - I) rows normalised, + I, written out row by row."""
    eye = torch.eye(matrix.shape[0])
    rows = []
    for row in matrix - eye:
        rows.append(row / row.sum() if row.sum() != 0 else row)
    return torch.stack(rows) + eye


def roll(attentions):
    result = torch.eye(attentions[0].shape[-1])
    for attention in attentions:
        mixed = 0.5 * attention.mean(0) + 0.5 * torch.eye(attention.shape[-1])
        result = (mixed / mixed.sum(-1, keepdim=True)) @ result
    return result


# BLIP captioning: every word of the caption from one pass --------------------------------


def blip_reference(captioner, images, row, caption):
    """Word log-probabilities and every layer's attention of one caption, by the Hugging Face
    model's own output_attentions (a copy), with the gradient graph kept."""
    reference = copy.deepcopy(captioner.model)
    tokens, _ = caption_tokens([caption], captioner.bos_index, 3, 0, torch.device("cpu"))
    vision = reference.vision_model(pixel_values=images[row : row + 1], output_attentions=True)
    decoded = reference.text_decoder(
        input_ids=tokens, encoder_hidden_states=vision.last_hidden_state,
        output_attentions=True, use_cache=False,
    )  # fmt: skip
    logp = decoded.logits.log_softmax(-1)[0, :-1].gather(1, tokens[0, 1:, None])[:, 0]
    return logp, list(vision.attentions), list(decoded.attentions), list(decoded.cross_attentions)


def blip_by_hand(method, image, text, cross, grads, rows):
    """One BLIP map written out from the attention (first item) and its gradients."""
    n_image, n_text = len(image), len(text)
    g_image, g_text, g_cross = grads[:n_image], grads[n_image : n_image + n_text], grads[-n_text:]
    a = [x[0].detach() for x in image + text + cross]
    a_image, a_text, a_cross = a[:n_image], a[n_image : n_image + n_text], a[-n_text:]
    if method == "attention":
        result = a_cross[-1].mean(0)
    elif method == "attention_gradcam":
        result = (g_cross[-1][0].clamp(min=0) * a_cross[-1]).mean(0)
    elif method == "rollout":
        result = roll(a_text) @ a_cross[-1].mean(0) @ roll(a_image)
    else:
        r_ii = torch.eye(a_image[0].shape[-1])
        for att, grad in zip(a_image, g_image, strict=True):
            r_ii = r_ii + cam(att, grad[0]) @ r_ii
        r_tt = torch.eye(a_text[0].shape[-1])
        r_ti = torch.zeros(a_text[0].shape[-1], r_ii.shape[0])
        for att, grad, c_att, c_grad in zip(a_text, g_text, a_cross, g_cross, strict=True):
            r_tt = r_tt + cam(att, grad[0]) @ r_tt
            r_ti = r_ti + cam(att, grad[0]) @ r_ti
            r_ti = r_ti + normalized(r_tt).T @ cam(c_att, c_grad[0]) @ normalized(r_ii)
        result = r_ti
    return result[rows].mean(0)[1:].reshape(4, 4)  # the class patch dropped


@pytest.mark.parametrize("method", METHODS)
def test_blip_word_and_caption_maps_equal_the_hand_computation(captioner, images, method):
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    result = explainer.explain(images, CAPTIONS, method=method)
    assert result.words.raw.shape == (2, 4, 4, 4) and result.caption.raw.shape == (2, 4, 4)
    for row, caption in enumerate(CAPTIONS):
        logp, image, text, cross = blip_reference(captioner, images, row, caption)
        everything = image + text + cross
        for t in range(len(caption)):
            grads = torch.autograd.grad(logp[t], everything, retain_graph=True)
            context = list(range(t + 1)) if method == "attention_gradcam" else [t]
            expected = blip_by_hand(method, image, text, cross, grads, context)
            torch.testing.assert_close(result.words.raw[row, t], expected, atol=1e-5, rtol=1e-4)
        grads = torch.autograd.grad(logp[: len(caption)].sum(), everything)
        expected = blip_by_hand(method, image, text, cross, grads, list(range(len(caption))))
        torch.testing.assert_close(result.caption.raw[row], expected, atol=1e-5, rtol=1e-4)
    assert result.words.raw.amax() > 1e-3  # far from zero: the equality is not of noise
    assert result.words.empty[1, 2:].all()  # the short caption's missing words have no map
    assert result.words.target_independent == registry.get(method).target_independent


@pytest.mark.parametrize("method", METHODS)
def test_blip_batched_word_maps_equal_one_backward_pass_per_word(captioner, images, method):
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    batched = explainer.explain(images, CAPTIONS, method=method).words.raw
    looped = attention_maps_per_word(explainer, images, CAPTIONS, method)
    assert looped.shape == batched.shape and looped.abs().amax() > 1e-3
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=0)


class CheckedIdentity(torch.autograd.Function):
    """The identity, whose backward reads a Python number (`.item()`): it cannot run under
    `torch.func.vmap`."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        assert torch.isfinite(grad).all().item()
        return grad


def test_a_backward_that_vmap_cannot_run_falls_back_to_one_pass_per_word(captioner, images):
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    expected = explainer.explain(images, CAPTIONS, method="relevance").words.raw
    layer = captioner.model.text_decoder.bert.encoder.layer[0].output
    handle = layer.register_forward_hook(lambda _m, _i, out: CheckedIdentity.apply(out))
    try:
        with pytest.warns(UserWarning, match="one backward pass per target instead"):
            got = explainer.explain(images, CAPTIONS, method="relevance").words.raw
    finally:
        handle.remove()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_blip_rollout_does_not_depend_on_the_word_explained(captioner, images):
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    other = [[7, 9, 6, 8], [8, 16]]  # the last word of the first caption changed
    first = explainer.explain(images, CAPTIONS, method="rollout")
    second = explainer.explain(images, other, method="rollout")
    torch.testing.assert_close(first.words.raw[0, 3], second.words.raw[0, 3], atol=0, rtol=0)
    assert first.words.target_independent and first.caption.target_independent
    relevant = explainer.explain(images, CAPTIONS, method="relevance").words.raw[0, 3]
    changed = explainer.explain(images, other, method="relevance").words.raw[0, 3]
    assert not torch.allclose(relevant, changed)


def test_blip_explain_image_runs_every_attention_method(captioner):
    image = picture(40, 56, seed=0)
    for method in METHODS:
        result = captioner.explain_image(image, "a cat on the mat", method=method)
        assert result.words.raw.shape == (1, 5, 4, 4) and result.words.maps.shape == (1, 5, 40, 56)


# ViLT VQA: the patch map and the question tokens' relevance ------------------------------


def vilt_reference(vilt, images, questions):
    """ViLT's answer logits and every layer's attention, by its layers' own output_attentions
    (a copy), the adapter's grid layout."""
    reference = copy.deepcopy(vilt)
    ids, mask = questions["input_ids"], questions["attention_mask"]
    pixel_mask = torch.ones(images.shape[0], *images.shape[-2:])
    image_embeds, image_mask = reference._patch_tokens(images, pixel_mask)
    model = reference.model.vilt
    hidden, token_mask = model.embeddings(
        ids, mask, torch.zeros_like(ids), None, image_mask, None, image_embeds
    )
    additive = (1.0 - token_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    attentions = []
    for layer in model.encoder.layer:
        hidden, attention = layer(hidden, additive, output_attentions=True)[:2]
        attentions.append(attention)
    logits = reference.model.classifier(model.pooler(model.layernorm(hidden)))
    return logits, attentions, reference._patches


def vilt_by_hand(method, attentions, grads):
    """Row 0 (the pooled token) of a ViLT map, written out from one item's attention."""
    a = [x.detach() for x in attentions]
    if method == "attention":
        return a[-1].mean(0)[0]
    if method == "rollout":
        return roll(a)[0]
    r = torch.eye(a[0].shape[-1])
    for att, grad in zip(a, grads, strict=True):
        r = r + cam(att, grad) @ r
    return r[0]


@pytest.mark.parametrize("method", METHODS)
def test_vilt_maps_and_question_relevance_equal_the_hand_computation(vilt, method):
    processed = vilt.preprocess([picture(40, 56, seed=1), picture(40, 56, seed=2)])
    images = processed.pixel_values  # [2, 3, 48, 64]: a 3x4 patch grid
    explainer = VQAStackExplainer(vilt, vilt.attention_layout(), vilt.to_grid)
    result = explainer.explain(images, QUESTIONS, top_k=2, method=method)
    questions = vilt.tokenize(QUESTIONS)
    length = questions["input_ids"].shape[1]
    logits, attentions, grid = vilt_reference(vilt, images, questions)
    best = logits.detach().topk(2, dim=1).indices
    assert result.answers == [[ANSWERS[i] for i in row] for row in best.tolist()]
    assert result.maps.raw.shape == (2, 2, 3, 4)
    assert result.question_relevance.shape == (2, 2, length)
    for b in range(2):
        mask = questions["attention_mask"][b].bool()
        for j in range(2):
            grads = torch.autograd.grad(logits[b, best[b, j]], attentions, retain_graph=True)
            att = [x[b] for x in attentions]
            grad = [g[b] for g in grads]
            if method == "attention_gradcam":  # ALBEF: averaged over the question's tokens
                weighted = (grad[-1].clamp(min=0) * att[-1].detach()).mean(0)
                weighted = weighted * (1 - torch.eye(weighted.shape[0]))
                row = weighted[:length][mask].mean(0)
            else:
                row = vilt_by_hand(method, att, grad)
                row = row.clone()
                row[0] = 0  # the read token's relevance to itself is dropped
            patches = row[length + 1 :]
            cells = grid.cells[b].float()
            torch.testing.assert_close(
                result.maps.raw[b, j], (patches * cells).reshape(3, 4), atol=1e-5, rtol=1e-4
            )
            words = torch.where(mask, row[:length], 0)
            torch.testing.assert_close(result.question_relevance[b, j], words, atol=1e-5, rtol=1e-4)
    assert result.maps.raw.amax() > 1e-3
    assert result.question_tokens[1][:5] == ["[CLS]", "is", "there", "a", "dog"]


def test_vilt_question_relevance_is_zero_at_padding_and_rollout_same_for_two_answers(vilt):
    image = picture(40, 56, seed=4)
    images = vilt.preprocess([image, image]).pixel_values
    explainer = VQAStackExplainer(vilt, vilt.attention_layout(), vilt.to_grid)
    questions = ["what color is the cat", "is there a dog"]  # the second is padded
    result = explainer.explain(images, questions, top_k=2, method="relevance")
    mask = vilt.tokenize(questions)["attention_mask"]
    assert (mask[1] == 0).any()
    assert (result.question_relevance[1][:, mask[1] == 0] == 0).all()
    assert (result.question_relevance[1][:, mask[1] == 1] != 0).any()
    assert result.question_tokens[0] == vilt.words(vilt.tokenize(questions)["input_ids"][0])
    rolled = explainer.explain(images, questions, top_k=2, method="rollout")
    torch.testing.assert_close(rolled.maps.raw[:, 0], rolled.maps.raw[:, 1], atol=0, rtol=0)
    assert rolled.maps.target_independent and not result.maps.target_independent
    assert rolled.maps.to_dict()["target_independent"] is True
    assert not torch.allclose(result.maps.raw[:, 0], result.maps.raw[:, 1])


def test_vilt_explains_the_answers_it_is_given(vilt):
    explainer = VQAStackExplainer(vilt, vilt.attention_layout(), vilt.to_grid)
    images = torch.randn(2, 3, 64, 64)
    chosen = torch.tensor([[2, 0], [1, 3]])
    result = explainer.explain(images, QUESTIONS, method="relevance", answers=chosen)
    assert result.answers == [[ANSWERS[2], ANSWERS[0]], [ANSWERS[1], ANSWERS[3]]]
    top = explainer.explain(images, QUESTIONS, method="relevance", top_k=2)
    again = explainer.explain(images, QUESTIONS, method="relevance", answers=torch.tensor(
        [[ANSWERS.index(a) for a in row] for row in top.answers]))  # fmt: skip
    torch.testing.assert_close(again.maps.raw, top.maps.raw, atol=0, rtol=0)
    with pytest.raises(ValueError, match="answers for 1 images, not 2"):
        explainer.explain(images, QUESTIONS, answers=chosen[:1])


def test_cnn_and_cross_attention_explanations_have_no_question_relevance(vilt):
    result = vilt.explain_image(picture(40, 56, seed=4), "what color is the cat", top_k=2)
    assert result.question_relevance is None and result.question_tokens is None
    attention = vilt.explain_image(picture(40, 56, seed=4), "what color", method="relevance")
    length = vilt.tokenize(["what color"])["input_ids"].shape[1]
    assert attention.question_relevance.shape == (1, 3, length)


# State: hooks gone and the model as it was, after success and after an error ---------------


def state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        hooks(model),
    )


@pytest.mark.parametrize("fail", [False, True])
def test_hooks_removed_and_state_restored(captioner, vilt, images, monkeypatch, fail):
    captioner.model.text_decoder.train()  # a mixed state, kept as it was
    captioner.model.vision_model.embeddings.patch_embedding.weight.requires_grad_(False)
    before = state(captioner)
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    try:
        if fail:

            def broken(*args, **kwargs):
                raise RuntimeError("decoder failed")

            monkeypatch.setattr(captioner, "decode_logits", broken)
            with pytest.raises(RuntimeError, match="decoder failed"):
                explainer.explain(images, CAPTIONS, method="relevance")
        else:
            explainer.explain(images, CAPTIONS, method="relevance")
        assert state(captioner) == before
        assert all(p.grad is None for p in captioner.parameters())
    finally:
        captioner.model.text_decoder.eval()
        captioner.model.vision_model.embeddings.patch_embedding.weight.requires_grad_(True)
    before = state(vilt)
    image = picture(40, 56, seed=4)
    if fail:

        def raising(*args, **kwargs):
            raise RuntimeError("pooler failed")

        monkeypatch.setattr(vilt.model.vilt.pooler, "forward", raising)
        with pytest.raises(RuntimeError, match="pooler failed"):
            vilt.explain_image(image, "what color is the cat", method="relevance")
    else:
        vilt.explain_image(image, "what color is the cat", method="relevance")
    assert state(vilt) == before
    assert all(p.grad is None for p in vilt.parameters())


def test_attention_before_the_entry_is_refused_and_hooks_removed(vilt):
    layout = vilt.attention_layout()
    early = "model.vilt.embeddings.text_embeddings"  # runs inside the entry, before it returns
    wrong = dataclasses.replace(layout, text=(early, *layout.text[1:]))
    before = state(vilt)
    with pytest.raises(RuntimeError, match="ran before 'model.vilt.embeddings'"):
        VQAStackExplainer(vilt, wrong, vilt.to_grid).explain(
            vilt.preprocess([picture(40, 56, seed=4)]).pixel_values, ["what"], top_k=1
        )
    assert state(vilt) == before
