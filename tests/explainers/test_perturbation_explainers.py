"""Occlusion and RISE through the caption and VQA explainers: every word's and every answer's map
from one sweep equals Captum's Occlusion run once per word / per answer, and RISE run alone."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion
from oracle import assert_drops_match, assert_matches
from tiny_models import TinyVQA

from mmcam.core.targets import ClassLogit, WordLogProb, token_logprobs
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens
from mmcam.explainers.vqa import VQAExplainer
from mmcam.methods.rise import rise

CAPTIONS = [[5, 7, 3, 9], [4, 6]]  # the second caption's words 2..3 are padding
QUESTIONS = ["what colour is it", "is it left"]
OCCLUSION = {"window": 3, "stride": 2, "fill": 0.5}
RISE = {"n_masks": 40, "cell": 3, "p": 0.5, "seed": 4}


def word_logprobs(model):
    """x, tokens, lengths -> every word's log-probability `[n, L - 1]`: Captum's forward, whose
    output column t is word t (its `target`)."""

    def forward(x, tokens, lengths):
        return token_logprobs(
            model.decode_logits(model.encode(x), tokens, lengths), tokens, lengths
        )

    return forward


@pytest.mark.parametrize("include_end", [False, True])
def test_every_word_and_the_caption_equal_captum_occlusion_once_per_word(
    captioner, images, include_end
):
    result = CaptionExplainer(captioner, "encoder.features", include_end=include_end).explain(
        images, CAPTIONS, method="occlusion", perturbation=OCCLUSION
    )
    tokens, counts = caption_tokens(CAPTIONS, 1, 2, 0, torch.device("cpu"))
    lengths = counts + int(include_end)
    steps = 4 + int(include_end)
    assert result.words.raw.shape == (2, steps, 8, 8) and result.caption.raw.shape == (2, 8, 8)
    forward = word_logprobs(captioner)
    with torch.no_grad():
        scores = forward(images, tokens, lengths)[:, :steps]
    captum = Occlusion(forward)
    per_word = []
    for word in range(steps):
        theirs = captum.attribute(
            images, (3, 3, 3), (3, 2, 2), 0.5, target=word,
            additional_forward_args=(tokens, lengths), perturbations_per_eval=5,
        )[:, 0]  # fmt: skip
        per_word.append(theirs)
        for row, caption in enumerate(CAPTIONS):
            if word < len(caption) + int(include_end):
                assert_drops_match(result.words.raw[row, word], theirs[row], scores)
    caption_forward = lambda x, t, n: forward(x, t, n).sum(dim=1, keepdim=True)  # noqa: E731
    whole = Occlusion(caption_forward).attribute(
        images, (3, 3, 3), (3, 2, 2), 0.5, target=0, additional_forward_args=(tokens, lengths)
    )[:, 0]
    assert_drops_match(result.caption.raw, whole, scores.sum(1))
    assert_drops_match(result.caption.raw, torch.stack(per_word, 1).sum(1), scores.sum(1))
    assert_matches(result.words.scores, scores)
    assert_matches(result.caption.scores, scores.sum(1))
    padded = 2 + int(include_end)
    assert result.words.empty[1, padded:].all() and not result.words.empty[0].any()
    assert (result.words.maps[1, padded:] == 0).all()
    assert result.word_labels(1)[-1] == ("<end>" if include_end else "w6")


def test_every_word_by_rise_equals_rise_of_that_word_alone(captioner, images):
    result = CaptionExplainer(captioner, "encoder.features").explain(
        images, CAPTIONS, method="rise", perturbation={**RISE, "batch_size": 3}
    )
    tokens, counts = caption_tokens(CAPTIONS, 1, 2, 0, torch.device("cpu"))

    def forward(x, t, n):
        return captioner.decode_logits(captioner.encode(x), t, n)

    for word in (0, 1):  # words both captions have
        alone = rise(
            forward, images, WordLogProb(tokens, counts, word), **RISE,
            model=captioner, forward_args=(tokens, counts),
        )  # fmt: skip
        assert_matches(result.words.raw[:, word], alone.raw)
        assert_matches(result.words.maps[:, word], alone.maps)
    assert_matches(result.caption.raw, result.words.raw.sum(1))
    assert result.words.empty[1, 2:].all()


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_every_top_answer_from_one_sweep_equals_one_answer_at_a_time(method):
    torch.manual_seed(0)
    model = TinyVQA().eval()
    images = torch.randn(2, 3, 8, 8)
    options = OCCLUSION if method == "occlusion" else RISE
    result = VQAExplainer(model, "image.features").explain(
        images, QUESTIONS, top_k=3, method=method, perturbation=options
    )
    questions = model.tokenize(QUESTIONS)
    with torch.no_grad():
        logits = model(images, questions)
    best = logits.topk(3, dim=1).indices
    assert result.answers == [[model.answers[i] for i in row] for row in best.tolist()]
    assert_matches(result.probabilities, torch.softmax(logits, 1).gather(1, best))
    assert result.maps.raw.shape == (2, 3, 8, 8) and result.maps.labels == result.answers
    assert_matches(result.maps.scores, logits.gather(1, best))
    for rank in range(3):
        if method == "occlusion":
            theirs = Occlusion(model).attribute(
                images, (3, 3, 3), (3, 2, 2), 0.5, target=best[:, rank].tolist(),
                additional_forward_args=(questions,), perturbations_per_eval=3,
            )[:, 0]  # fmt: skip
        else:
            theirs = rise(
                model, images, ClassLogit(best[:, rank]), **RISE, forward_args=(questions,)
            ).raw
        assert_drops_match(result.maps.raw[:, rank], theirs, logits)


def test_perturbation_options_and_counterfactuals_are_refused_where_they_do_not_apply(
    captioner, images
):
    with pytest.raises(ValueError, match="perturbation options \\(window\\) are for occlusion"):
        CaptionExplainer(captioner, "encoder.features").explain(
            images, CAPTIONS, method="gradcam", perturbation={"window": 4}
        )
    with pytest.raises(TypeError, match="n_masks"):
        CaptionExplainer(captioner, "encoder.features").explain(
            images, CAPTIONS, method="occlusion", perturbation={"n_masks": 4}
        )
    with pytest.raises(ValueError, match="counterfactual maps come from the CAM methods"):
        VQAExplainer(TinyVQA().eval(), "image.features").explain(
            images, QUESTIONS, method="rise", counterfactual=True
        )
