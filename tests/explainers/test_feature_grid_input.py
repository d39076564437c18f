"""Models that take a precomputed grid of image features: layer="input" explains with respect
to the model's first positional input, and size= upsamples the maps to the image."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam
from tiny_models import TinyCaptioner
from torch import nn

from mmcam.core.explanation import normalize_maps, upsample_maps
from mmcam.core.tap import Tap
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer

QUESTIONS = ["what colour is the circle", "is there a square", "how many shapes"]


class GridVQA(nn.Module):
    """`model(grid [B, 32, 7, 7], questions [B, L])`: a VQA head over precomputed features.
    `entry` (an identity) gives Captum a layer whose output is the grid."""

    answers = [f"answer{i}" for i in range(6)]
    vocabulary = {w: i + 1 for i, w in enumerate(sorted({w for q in QUESTIONS for w in q.split()}))}

    def __init__(self) -> None:
        super().__init__()
        self.entry = nn.Identity()
        self.project = nn.Conv2d(32, 8, 1)
        self.embed = nn.Embedding(len(self.vocabulary) + 1, 8)
        self.classify = nn.Linear(8, len(self.answers))

    def tokenize(self, questions):
        ids = [[self.vocabulary.get(w, 0) for w in q.split()] for q in questions]
        longest = max(len(row) for row in ids)
        return torch.tensor([row + [0] * (longest - len(row)) for row in ids])

    def unknown_words(self, question):
        return [w for w in question.split() if w not in self.vocabulary]

    def forward(self, grid, questions):
        cells = torch.relu(self.project(self.entry(grid)))  # [B, 8, 7, 7]
        question = self.embed(questions).mean(dim=1)  # [B, 8]
        fused = cells * question[:, :, None, None]
        return self.classify(fused.mean(dim=(2, 3)))


@pytest.fixture
def model_and_grid():
    torch.manual_seed(0)
    return GridVQA().eval(), torch.randn(3, 32, 7, 7)


def test_answer_maps_over_the_input_grid_equal_captum_layer_gradcam(model_and_grid):
    model, grid = model_and_grid
    result = VQAExplainer(model, "input").explain(grid, QUESTIONS, top_k=3, size=(56, 56))
    tokens = model.tokenize(QUESTIONS)
    best = model(grid, tokens).topk(3, dim=1).indices
    assert [[model.answers[i] for i in row] for row in best.tolist()] == result.answers
    captum = LayerGradCam(model, model.entry)
    for rank in range(3):
        oracle = captum.attribute(
            grid, target=best[:, rank], additional_forward_args=(tokens,), relu_attributions=True
        )  # [B, 1, 7, 7]
        torch.testing.assert_close(result.maps.raw[:, rank], oracle[:, 0], atol=1e-5, rtol=0)
    assert result.maps.maps.shape == (3, 3, 56, 56)
    expected, _ = normalize_maps(upsample_maps(result.maps.raw, (56, 56)))
    torch.testing.assert_close(result.maps.maps, expected, atol=1e-6, rtol=0)
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_a_question_input_without_one_row_per_image_is_refused(model_and_grid):
    model, grid = model_and_grid
    model.tokenize = lambda questions: torch.zeros(1, 4, dtype=torch.long)  # one row for three
    with pytest.raises(ValueError, match="tokenize gave 1 rows for 3 questions"):
        VQAExplainer(model, "input").explain(grid, QUESTIONS)


class GridCaptioner(TinyCaptioner):
    """A captioner whose encode starts with an identity on its input."""

    def __init__(self) -> None:
        super().__init__()
        self.entry = nn.Identity()

    def encode(self, images):
        return super().encode(self.entry(images))


def test_caption_maps_over_the_input_equal_those_at_an_identity_on_it():
    torch.manual_seed(0)
    model, images = GridCaptioner().eval(), torch.randn(2, 3, 8, 8)
    captions = [[4, 5, 6], [7, 8]]
    at_input = CaptionExplainer(model, "input").explain(images, captions, size=(16, 16))
    at_entry = CaptionExplainer(model, "entry").explain(images, captions, size=(16, 16))
    torch.testing.assert_close(at_input.words.raw, at_entry.words.raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(at_input.caption.maps, at_entry.caption.maps, atol=1e-6, rtol=0)
    assert at_input.words.maps.shape == (2, 3, 16, 16)


def test_a_submodule_named_input_makes_the_name_ambiguous():
    model = nn.Sequential()
    model.add_module("input", nn.Identity())
    with pytest.raises(ValueError, match="layer='input' is ambiguous"):
        Tap(model, "input")
