"""CaptionExplainer and VQAExplainer: batched maps equal one-target-at-a-time maps and Captum."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Deconvolution, GuidedBackprop, LayerGradCam
from tiny_models import TinyVQA

from mmcam.core.explanation import normalize_maps
from mmcam.core.tap import Tap
from mmcam.core.targets import CaptionLogProb, WordLogProb
from mmcam.data.vocab import Vocabulary
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens
from mmcam.explainers.vqa import VQAExplainer
from mmcam.explainers.word_baselines import maps_forward_backward_per_word, maps_retained_graph
from mmcam.methods.cam import grad_cam
from mmcam.methods.pixel_space import deconvnet, guided_backprop
from mmcam.zoo.captioner import Captioner, CaptionerConfig
from mmcam.zoo.show_and_tell import ShowAndTell

LAYER = "encoder.features"


CAPTIONS = [[5, 7, 3, 9], [4, 6]]  # different lengths: the second image's rows 2..3 are padding


def teacher_forced(captions):
    """BOS=1, EOS=2, PAD=0 as in TinyCaptioner."""
    return caption_tokens(captions, 1, 2, 0, torch.device("cpu"))


def test_caption_logprob_equals_sum_of_word_logprobs(captioner, images):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS)
    tokens, counts = teacher_forced(CAPTIONS)
    with torch.no_grad():
        logits = captioner.decode_logits(captioner.encode(images), tokens, counts)
        whole = CaptionLogProb(tokens, counts)(logits)
    torch.testing.assert_close(result.caption.scores, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.words.scores.sum(1), whole, atol=1e-5, rtol=0)
    assert result.words.scores[1, 2:].tolist() == [0.0, 0.0]
    assert result.words.empty[1, 2:].tolist() == [True, True]


def assert_words_match(words, single, position, fields):
    """`single` explains word `position` of every caption (row r: caption r): its `fields` equal
    that word's in the batched `words`, for each caption that has the word."""
    for row, caption in enumerate(CAPTIONS):
        if position < len(caption):
            for name in fields:
                theirs = getattr(single, name)[row]
                torch.testing.assert_close(
                    getattr(words, name)[row, position], theirs, atol=1e-5, rtol=0
                )


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "counterfactual"])
def test_word_maps_equal_one_word_at_a_time(captioner, images, method):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS, method=method)
    tokens, counts = teacher_forced(CAPTIONS)
    for position in range(4):
        with Tap(captioner, LAYER) as tap:
            logits = captioner.decode_logits(captioner.encode(images), tokens, counts)
            scores = WordLogProb(tokens, counts, position)(logits)
        single = grad_cam(tap, scores, method, size=images.shape[-2:])
        assert_words_match(result.words, single, position, ("raw", "maps"))
    assert result.words.raw.abs().sum() > 0


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_caption_map_equals_map_of_the_caption_logprob(captioner, images, method):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS, method=method)
    tokens, counts = teacher_forced(CAPTIONS)
    with Tap(captioner, LAYER) as tap:
        logits = captioner.decode_logits(captioner.encode(images), tokens, counts)
        scores = CaptionLogProb(tokens, counts)(logits)
    direct = grad_cam(tap, scores, method, size=images.shape[-2:])
    torch.testing.assert_close(result.caption.raw, direct.raw, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_pixel_word_and_caption_maps_equal_one_target_at_a_time(captioner, images, method):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS, method=method)
    tokens, counts = teacher_forced(CAPTIONS)
    single_target = guided_backprop if method == "guided_backprop" else deconvnet

    def forward(inputs, tokens, counts):
        return captioner.decode_logits(captioner.encode(inputs), tokens, counts)

    def direct(target):
        return single_target(
            forward, images, target, model=captioner, forward_args=(tokens, counts)
        )

    for position in range(4):
        single = direct(WordLogProb(tokens, counts, position))
        assert_words_match(result.words, single, position, ("raw", "scores"))
    whole = direct(CaptionLogProb(tokens, counts))
    torch.testing.assert_close(result.caption.raw, whole.raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.caption.maps, whole.maps, atol=1e-5, rtol=0)
    assert result.words.raw.shape == (2, 4, 3, 8, 8) and result.words.maps.shape == (2, 4, 8, 8)
    assert result.words.empty.tolist() == [[False] * 4, [False, False, True, True]]
    # The rule is not linear in the score: the caption needs its own row, not the words' sum.
    assert (result.caption.raw - result.words.raw.sum(dim=1)).abs().max() > 1e-4


def test_generated_caption_is_explained_and_model_left_as_found(captioner, images):
    captioner.train()
    try:
        result = CaptionExplainer(captioner, LAYER).explain(images, max_length=5)
        assert captioner.training
    finally:
        captioner.eval()
    assert [len(c) for c in result.captions] == [5, 5]
    assert result.words.maps.shape == (2, 5, 8, 8) and result.caption.maps.shape == (2, 8, 8)
    assert result.word_labels(0) == [f"w{i}" for i in result.captions[0]]
    assert all(p.grad is None for p in captioner.parameters())
    assert all(not m._forward_hooks for m in captioner.modules())


def test_end_token_can_be_explained_too(captioner, images):
    result = CaptionExplainer(captioner, LAYER, include_end=True).explain(images, CAPTIONS)
    assert result.word_labels(1) == ["w4", "w6", "<end>"]
    assert result.words.scores.shape == (2, 5)


def test_models_without_the_protocol_are_refused():
    with pytest.raises(TypeError, match="lacks part of the CaptionModel protocol"):
        CaptionExplainer(torch.nn.Linear(2, 2), "weight")
    with pytest.raises(TypeError, match="lacks part of the VQAModel protocol"):
        VQAExplainer(torch.nn.Linear(2, 2), "weight")


@pytest.fixture(scope="module")
def vqa():
    torch.manual_seed(2)
    return TinyVQA().eval()


QUESTIONS = ["what color is the circle", "is there a red square"]


def test_vqa_answer_maps_equal_captum_layergradcam(vqa, images):
    result = VQAExplainer(vqa, "image.features").explain(images, QUESTIONS, top_k=3)
    questions = vqa.tokenize(QUESTIONS)
    with torch.no_grad():
        logits = vqa(images, questions)
    best = logits.topk(3, dim=1).indices
    assert result.answers == [[vqa.answers[i] for i in row] for row in best.tolist()]
    torch.testing.assert_close(
        result.probabilities, logits.softmax(1).gather(1, best), atol=1e-6, rtol=0
    )
    gradcam = LayerGradCam(lambda x: vqa(x, questions), vqa.image.features)
    for rank in range(3):
        theirs = gradcam.attribute(images, target=best[:, rank].tolist(), relu_attributions=True)
        torch.testing.assert_close(
            result.maps.raw[:, rank], theirs.squeeze(1).detach(), atol=1e-5, rtol=0
        )
    assert result.maps.raw.abs().sum() > 0
    assert result.counterfactual is None


def test_vqa_counterfactual_is_gradcam_of_the_negated_score(vqa, images):
    result = VQAExplainer(vqa, "image.features").explain(
        images, QUESTIONS, top_k=2, counterfactual=True
    )
    questions = vqa.tokenize(QUESTIONS)
    best = [vqa.answers.index(answers[0]) for answers in result.answers]
    theirs = LayerGradCam(lambda x: -vqa(x, questions), vqa.image.features).attribute(
        images, target=best, relu_attributions=True
    )
    torch.testing.assert_close(
        result.counterfactual.raw[:, 0], theirs.squeeze(1).detach(), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_vqa_pixel_maps_equal_captum(vqa, images, method):
    explainer = VQAExplainer(vqa, "image.features")
    result = explainer.explain(images, QUESTIONS, top_k=3, method=method)
    cam = explainer.explain(images, QUESTIONS, top_k=3)
    assert result.answers == cam.answers
    torch.testing.assert_close(result.probabilities, cam.probabilities, atol=1e-6, rtol=0)
    questions = vqa.tokenize(QUESTIONS)

    class Answering(torch.nn.Module):  # Captum's rules need the model as one module
        def __init__(self) -> None:
            super().__init__()
            self.vqa = vqa

        def forward(self, inputs):
            return self.vqa(inputs, questions)

    oracle = (GuidedBackprop if method == "guided_backprop" else Deconvolution)(Answering())
    for rank in range(3):
        answer = [vqa.answers.index(answers[rank]) for answers in result.answers]
        theirs = oracle.attribute(images, target=answer)
        torch.testing.assert_close(result.maps.raw[:, rank], theirs, atol=1e-6, rtol=0)
    assert result.maps.raw.abs().sum() > 0 and result.maps.maps.shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="counterfactual maps come from the CAM methods"):
        explainer.explain(images, QUESTIONS, method=method, counterfactual=True)


def test_an_unknown_method_is_refused_with_every_known_one(captioner, vqa, images):
    known = "gradcam, gradcam[+][+], counterfactual, hirescam, layercam, guided_backprop, deconvnet"
    with pytest.raises(ValueError, match=f"unknown method 'guided'; choose one of {known}"):
        CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS, method="guided")
    with pytest.raises(ValueError, match=f"unknown method 'guided'; choose one of {known}"):
        VQAExplainer(vqa, "image.features").explain(images, QUESTIONS, method="guided")


def test_vqa_refuses_empty_question_and_mismatched_batch(vqa, images):
    explainer = VQAExplainer(vqa, "image.features")
    with pytest.raises(ValueError, match="empty question"):
        explainer.explain(images, ["what color", "  "])
    with pytest.raises(ValueError, match="1 questions for 2 images"):
        explainer.explain(images, ["what color"])


def test_benchmark_baselines_compute_the_same_word_maps(captioner, images):
    result = CaptionExplainer(captioner, LAYER).explain(images, CAPTIONS)
    for baseline in (maps_forward_backward_per_word, maps_retained_graph):
        maps = baseline(captioner, LAYER, images, CAPTIONS)
        torch.testing.assert_close(maps, result.words.raw, atol=1e-5, rtol=0)


def test_show_and_tell_word_maps_equal_the_per_word_baselines():
    torch.manual_seed(3)
    model = ShowAndTell(Vocabulary(["a", "red", "circle", "square"]), hidden_dim=16, embed_dim=8)
    model.eval()
    images = torch.rand(2, 3, 32, 32)
    captions = [[4, 5, 6], [4, 7]]
    result = CaptionExplainer(model, "encoder.layer4").explain(images, captions)
    baseline = maps_retained_graph(model, "encoder.layer4", images, captions)
    torch.testing.assert_close(result.words.raw, baseline, atol=1e-5, rtol=0)
    assert result.word_labels(1) == ["a", "square"]
    generated = model.generate(images, max_length=4)
    assert len(generated) == 2 and all(len(caption) <= 4 for caption in generated)
    with pytest.raises(ValueError, match="decodes greedily"):
        model.generate(images, beam_size=3)


def attention_captioner(vocab: Vocabulary) -> Captioner:
    config = CaptionerConfig(
        len(vocab), [8, 8, 8], memory_dim=8, embed_dim=8, hidden_dim=16, attention_dim=8,
        image_size=32, memory_kernel=3,
    )  # fmt: skip
    return Captioner(config, vocab)


@pytest.mark.parametrize(
    "build",
    [lambda vocab: ShowAndTell(vocab, hidden_dim=16, embed_dim=8), attention_captioner],
)
def test_last_step_logits_are_the_teacher_forced_logits_at_each_rows_last_step(build):
    torch.manual_seed(4)
    model = build(Vocabulary(["a", "red", "circle"])).eval()
    features = model.encode(torch.rand(3, 3, 32, 32))
    tokens, _ = caption_tokens([[4, 5, 6], [4], [6, 5]], 1, 2, 0, torch.device("cpu"))
    lengths = torch.tensor([3, 1, 2])
    with torch.no_grad():
        full = model.decode_logits(features, tokens, lengths)
        last = model.decode_last_logits(features, tokens, lengths)
    torch.testing.assert_close(last, full[torch.arange(3), lengths - 1])
    assert not torch.equal(last[0], full[0, 0])  # a later step, not the first


def fused_by_hand(explanations):
    """LayerCAM's fusion of single-layer maps (each already upsampled and normalised)."""
    return normalize_maps(torch.stack([e.maps for e in explanations]).amax(dim=0))[0]


FUSED = ["encoder.body.0", "encoder.features"]  # 8x8 and 4x4 grids


def test_fused_word_and_caption_maps_are_the_maximum_of_each_layers_maps(captioner, images):
    result = CaptionExplainer(captioner, FUSED).explain(images, CAPTIONS, method="layercam")
    single = [
        CaptionExplainer(captioner, layer).explain(images, CAPTIONS, method="layercam")
        for layer in FUSED
    ]
    torch.testing.assert_close(
        result.words.maps, fused_by_hand([s.words for s in single]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        result.caption.maps, fused_by_hand([s.caption for s in single]), atol=1e-5, rtol=0
    )
    for one in single:  # both layers count
        assert (one.words.maps - result.words.maps).abs().max() > 0.05
    assert all(not m._forward_hooks for m in captioner.modules())


def test_vqa_fuses_layers_given_as_a_comma_separated_string(vqa, images):
    result = VQAExplainer(vqa, "image.body.0, image.features").explain(
        images, QUESTIONS, method="layercam"
    )
    single = [
        VQAExplainer(vqa, layer).explain(images, QUESTIONS, method="layercam").maps
        for layer in ("image.body.0", "image.features")
    ]
    torch.testing.assert_close(result.maps.maps, fused_by_hand(single), atol=1e-5, rtol=0)
    assert result.maps.raw.shape == (2, 3, 8, 8)  # the fused map, at the input's size
