"""Wrapped research code that breaks the captioner protocol is caught, not explained."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyCaptioner
from torch import nn

from mmcam.explainers.captioning import CaptionExplainer

LAYER = "encoder.features"
CAPTIONS = [[4, 5, 6], [7, 8]]


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
    """The README's wrapper: put the rows back in the caller's order."""

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
