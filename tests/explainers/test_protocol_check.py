"""Wrapped research code that breaks the captioner or VQA protocol is caught, not explained,
by every method."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tiny_models import TinyCaptioner, TinyVQA
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer

LAYER = "encoder.features"
CAPTIONS = [[4, 5, 6], [7, 8]]
VQA_LAYER = "image.features"
QUESTIONS = ["is it red", "what colour is the big shape"]  # sorted by length, they swap
PERTURBATION = {"occlusion": {"window": 4}, "rise": {"n_masks": 8, "cell": 4}}
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "wrap.md"


class SortsByLength(TinyCaptioner):
    """A Show-Attend-Tell style decoder: sorts its batch by length, longest first, and returns
    the rows in that sorted order together with the order."""

    def decode_sorted(self, features, tokens, lengths):
        order = lengths.argsort(descending=True, stable=True)
        logits = super().decode_logits(features[order], tokens[order], lengths[order])
        return logits, order

    def decode_logits(self, features, tokens, lengths):
        return self.decode_sorted(features, tokens, lengths)[0]  # rows left sorted: wrong


class UndoesTheSort(SortsByLength):
    """The user guide's wrapper: put the rows back in the caller's order."""

    def decode_logits(self, features, tokens, lengths):
        logits, order = self.decode_sorted(features, tokens, lengths)
        unsorted = torch.empty_like(logits)
        unsorted[order] = logits  # row i of the sorted batch is the caller's row order[i]
        return unsorted


class MixesRows(TinyCaptioner):
    """Rows depend on each other: every row's features are scaled by the batch's spread."""

    def decode_logits(self, features, tokens, lengths):
        return super().decode_logits(features / features.std(0), tokens, lengths)


class DropsTheLastStep(TinyCaptioner):
    """Decodes one step fewer than the teacher-forced input has."""

    def decode_logits(self, features, tokens, lengths):
        return super().decode_logits(features, tokens, lengths)[:, :-1]


class NoGenerate(nn.Module):
    """A captioner that can score captions but not write them."""

    bos_index, eos_index, pad_index = 1, 2, 0

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCaptioner()

    def encode(self, images):
        return self.inner.encode(images)

    def decode_logits(self, features, tokens, lengths):
        return self.inner.decode_logits(features, tokens, lengths)

    def words(self, token_ids):
        return [f"w{i}" for i in token_ids]


def seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 8, 8)


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop"])
def test_decoder_returning_sorted_rows_is_refused(images, method):
    with pytest.raises(ValueError, match="returns rows in another order than given") as error:
        CaptionExplainer(seeded(SortsByLength), LAYER).explain(images, CAPTIONS, method=method)
    assert "check=False skips this check" in str(error.value)


def test_check_false_skips_the_check_and_its_decode(images):
    decodes = []
    for model, check, expected in [(SortsByLength, False, 1), (TinyCaptioner, True, 2)]:
        model = seeded(model)
        model.lstm.register_forward_hook(lambda *_: decodes.append(1))
        decodes.clear()
        CaptionExplainer(model, LAYER, check=check).explain(images, CAPTIONS)
        assert len(decodes) == expected  # the explained pass, and the check's plain decode


def test_readme_wrapper_that_undoes_the_sort_gives_the_plain_models_maps(images):
    wrapped = CaptionExplainer(seeded(UndoesTheSort), LAYER).explain(images, CAPTIONS)
    plain = CaptionExplainer(seeded(TinyCaptioner), LAYER).explain(images, CAPTIONS)
    torch.testing.assert_close(wrapped.words.raw, plain.words.raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(wrapped.words.scores, plain.words.scores, atol=1e-6, rtol=0)


def test_rows_that_depend_on_each_other_are_refused(images):
    with pytest.raises(ValueError, match="rows depend on each other"):
        CaptionExplainer(seeded(MixesRows), LAYER).explain(images, CAPTIONS)


def test_decoder_returning_too_few_steps_is_told_what_was_expected(images):
    explainer = CaptionExplainer(seeded(DropsTheLastStep), LAYER)
    with pytest.raises(ValueError) as error:
        explainer.explain(images, CAPTIONS)
    assert str(error.value).startswith(
        "DropsTheLastStep.decode_logits returned (6, 4, 12) for tokens [6, 5]; expected "
        "[6, 5, V]: one row per input row in the given order, and one step per input token"
    )


def test_generate_is_needed_only_to_caption_the_images(images):
    explainer = CaptionExplainer(seeded(NoGenerate), "inner." + LAYER)
    result = explainer.explain(images, CAPTIONS)
    assert result.words.scores.shape == (2, 3)
    with pytest.raises(TypeError, match="give the captions to explain"):
        explainer.explain(images)


def readme_class(name):
    """Class `name` as the user guide's Python example that defines it has it."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    block = next(block for block in blocks if f"class {name}(" in block)
    namespace = {}
    exec(block.split("\nexplainer = ")[0], namespace)  # the definitions, not the example's run
    return namespace[name]


MyCaptioner = readme_class("MyCaptioner")


class ReadmeCaptionerSortedByLength(MyCaptioner):
    """The user guide's captioner with a decoder that sorts its batch by caption length, longest
    first, and returns the rows in that order."""

    def decode_logits(self, features, tokens, lengths):
        order = lengths.argsort(descending=True, stable=True)
        return super().decode_logits(features[order], tokens[order], lengths[order])


def readme_captioner(cls):
    torch.manual_seed(0)
    return cls().eval(), torch.rand(2, 3, 64, 64)


README_CAPTIONS = [[3, 4, 5], [3, 6]]  # the README's: "a red circle", "a square"
README_PERTURBATION = {"occlusion": {"window": 16}, "rise": {"n_masks": 16, "cell": 16}}


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "guided_backprop", "occlusion", "rise"])
def test_readme_captioner_sorting_by_length_is_refused_by_every_method(method):
    model, images = readme_captioner(ReadmeCaptionerSortedByLength)
    options = README_PERTURBATION.get(method)
    with pytest.raises(ValueError, match="returns rows in another order than given") as error:
        CaptionExplainer(model, "cnn").explain(
            images, README_CAPTIONS, method=method, perturbation=options
        )
    message = str(error.value)
    assert message.startswith(
        "ReadmeCaptionerSortedByLength breaks the captioner protocol: the log-probability of word "
    )
    assert message.endswith(
        "See the user guide (docs/guide/wrap.md), 'Your own captioner'; "
        "check=False skips this check"
    )


def test_rise_without_the_check_gives_the_sorted_captioner_other_rows_word_maps():
    """What the check prevents: RISE interleaves the images' masked copies in its batches, so the
    sorting decoder hands each image's copies the other caption's scores."""
    model, images = readme_captioner(ReadmeCaptionerSortedByLength)
    plain, _ = readme_captioner(MyCaptioner)
    options = {"perturbation": README_PERTURBATION["rise"], "method": "rise"}
    wrong = CaptionExplainer(model, "cnn", check=False).explain(images, README_CAPTIONS, **options)
    right = CaptionExplainer(plain, "cnn").explain(images, README_CAPTIONS, **options)
    torch.testing.assert_close(wrong.words.scores, right.words.scores)  # the unmasked call: sorted
    assert (wrong.words.maps - right.words.maps).abs().amax() > 0.5


class SortsQuestionsByLength(TinyVQA):
    """A pytorch-vqa style `Net` (image features, question ids and their lengths, longest first,
    as its packed LSTM requires) behind the wrapper that sorts the batch for it and never sorts
    back: row i of the output is the caller's row order[i]."""

    def sorted_logits(self, images, questions):
        grid = self.image.features(self.image.body(images))
        picture = torch.tanh(self.spatial(grid.flatten(1)))  # [B, H]
        lengths = (questions != 0).sum(dim=1)
        order = lengths.argsort(descending=True, stable=True)
        return self.net(picture[order], questions[order], lengths[order]), order

    def net(self, picture, questions, lengths):
        packed = pack_padded_sequence(self.embed(questions), lengths.cpu(), batch_first=True)
        _, (question, _) = self.lstm(packed)
        return self.classify(picture * question[0])

    def forward(self, images, questions):
        return self.sorted_logits(images, questions)[0]  # rows left sorted: wrong


class SortsQuestionsBack(SortsQuestionsByLength):
    """The same wrapper, putting the rows back in the caller's order."""

    def forward(self, images, questions):
        logits, order = self.sorted_logits(images, questions)
        unsorted = torch.empty_like(logits)
        unsorted[order] = logits
        return unsorted


class CentresQuestionRows(TinyVQA):
    """Rows depend on each other: the image features are centred on the batch's mean."""

    def forward(self, images, questions):
        grid = self.image.features(self.image.body(images))
        picture = torch.tanh(self.spatial(grid.flatten(1)))
        _, (question, _) = self.lstm(self.embed(questions))
        return self.classify((picture - picture.mean(dim=0)) * question[0])


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop", "occlusion", "rise"])
def test_vqa_model_that_sorts_questions_by_length_and_never_sorts_back_is_refused(images, method):
    explainer = VQAExplainer(seeded(SortsQuestionsByLength), VQA_LAYER)
    with pytest.raises(ValueError) as error:
        explainer.explain(images, QUESTIONS, method=method, perturbation=PERTURBATION.get(method))
    message = str(error.value)
    assert message.startswith("SortsQuestionsByLength breaks the VQA model protocol: the logit of ")
    assert (
        "Likely causes: the model sorts its batch (by question length, for a packed LSTM) and "
        "does not restore the order, so each question gets another's answers" in message
    )
    assert message.endswith(
        "See the user guide (docs/guide/wrap.md), 'Your own VQA model'; "
        "check=False skips this check"
    )


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_vqa_rows_that_depend_on_each_other_are_refused(images, method):
    explainer = VQAExplainer(seeded(CentresQuestionRows), VQA_LAYER)
    with pytest.raises(ValueError, match="rows depend on each other"):
        explainer.explain(images, QUESTIONS, method=method, perturbation=PERTURBATION.get(method))


def test_vqa_check_false_skips_the_check_and_its_call_leaving_each_question_anothers_answers(
    images,
):
    calls = []
    explained = {}
    for name, model, check, expected in [
        ("wrong", SortsQuestionsByLength, False, 1), ("right", SortsQuestionsBack, True, 2)
    ]:
        model = seeded(model)
        model.lstm.register_forward_hook(lambda *_: calls.append(1))
        calls.clear()
        explained[name] = VQAExplainer(model, VQA_LAYER, check=check).explain(images, QUESTIONS)
        assert len(calls) == expected  # the explained pass, and the check's plain call
    wrong, right = explained["wrong"], explained["right"]
    assert (right.probabilities[0] - right.probabilities[1]).abs().amax() > 1e-3  # tell apart
    assert wrong.answers == right.answers[::-1]
    torch.testing.assert_close(wrong.probabilities, right.probabilities.flip(0))
    torch.testing.assert_close(wrong.maps.scores, right.maps.scores.flip(0))


@pytest.mark.parametrize("method", ["gradcam", "rise"])
def test_vqa_wrapper_that_sorts_back_gives_each_question_its_own_answers_and_maps(images, method):
    explainer = VQAExplainer(seeded(SortsQuestionsBack), VQA_LAYER)
    options = {"method": method, "perturbation": PERTURBATION.get(method), "top_k": 2}
    together = explainer.explain(images, QUESTIONS, **options)
    for row, question in enumerate(QUESTIONS):  # alone, a row cannot be reordered or mixed
        alone = explainer.explain(images[row : row + 1], [question], **options)
        assert together.answers[row] == alone.answers[0]
        torch.testing.assert_close(together.maps.raw[row], alone.maps.raw[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(together.probabilities[row], alone.probabilities[0])
