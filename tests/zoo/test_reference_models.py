"""The reference captioner and VQA model: protocol properties and the committed checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmcam.core.protocols import CaptionModel, VQAModel
from mmcam.data.images import load_image, preprocess
from mmcam.data.vocab import Vocabulary
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer
from mmcam.zoo.captioner import Captioner, CaptionerConfig, load_captioner, save_captioner
from mmcam.zoo.vqa_model import VQAConfig, VQANet, load_vqa_model

MODELS = Path(__file__).resolve().parents[2] / "models"
WORDS = "a an red blue green circle square star to the left of".split()


def small_captioner(seed: int = 0, **sizes) -> Captioner:
    torch.manual_seed(seed)
    vocab = Vocabulary(list(Vocabulary.SPECIALS) + WORDS)
    config = CaptionerConfig(
        len(vocab), encoder_widths=[8, 12, 12], memory_dim=16, embed_dim=8, hidden_dim=16,
        attention_dim=8, **sizes,
    )  # fmt: skip
    return Captioner(config, vocab).eval()


def small_vqa(seed: int = 0) -> VQANet:
    torch.manual_seed(seed)
    vocab = Vocabulary.build(["what color is the circle ?", "is there a red star ?"])
    answers = ["yes", "no", "red", "blue"]
    config = VQAConfig(
        len(vocab), len(answers), encoder_widths=[8, 12, 12], dim=16, embed_dim=8, hidden_dim=8
    )
    return VQANet(config, vocab, answers).eval()


def test_models_satisfy_the_protocols_and_tap_a_16x16_grid() -> None:
    captioner, vqa = small_captioner(), small_vqa()
    assert isinstance(captioner, CaptionModel) and isinstance(vqa, VQAModel)
    images = torch.randn(2, 3, 128, 128)
    assert captioner.encoder(images).shape == (2, 12, 16, 16)  # ends with encoder.features
    grid = dict(vqa.named_modules())[vqa.explained_layer]
    assert grid is vqa.encoder.features and captioner.explained_layer == "encoder.features"


def test_decode_logits_on_replicated_features_equals_replicated_logits() -> None:
    model, replicas = small_captioner(), 5
    images = torch.randn(2, 3, 128, 128)
    tokens = torch.tensor([[1, 4, 6, 9, 2, 0], [1, 5, 7, 10, 11, 2]])
    lengths = torch.tensor([4, 5])
    with torch.no_grad():
        grid = model.encoder(images)  # [2, C, 16, 16]: the explained layer's output
        once = model.decode_logits(model.memory_from_grid(grid), tokens, lengths)
        many = model.decode_logits(
            model.memory_from_grid(grid.repeat_interleave(replicas, dim=0)),
            tokens.repeat_interleave(replicas, dim=0),
            lengths.repeat_interleave(replicas, dim=0),
        )
    assert many.shape == (2 * replicas, 6, len(model.vocab))
    assert torch.allclose(many, once.repeat_interleave(replicas, dim=0), atol=1e-5)


def test_decode_logits_honours_lengths_and_costs_one_step_per_counted_token() -> None:
    model = small_captioner()
    images = torch.randn(3, 3, 128, 128)
    tokens = torch.randint(4, len(model.vocab), (3, 7))
    tokens[:, 0] = model.bos_index
    rows_decoded = []
    advance = model.advance

    def counting_advance(memory, *args):
        rows_decoded.append(memory.shape[0])
        return advance(memory, *args)

    with torch.no_grad():
        memory = model.encode(images)
        full = model.decode_logits(memory, tokens, torch.tensor([7, 7, 7]))
        model.advance = counting_advance
        short = model.decode_logits(memory, tokens, torch.tensor([2, 6, 1]))
    assert rows_decoded == [3, 2, 1, 1, 1, 1]  # replica with length t runs t steps
    assert sum(rows_decoded) == 2 + 6 + 1
    for row, length in enumerate([2, 6, 1]):
        assert torch.allclose(short[row, :length], full[row, :length], atol=1e-5)
        assert (short[row, length:] == 0).all()


def test_generate_with_beam_size_one_equals_greedy() -> None:
    model = small_captioner(seed=3)
    images = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        greedy = model.generate(images, max_length=8)
        memory = model.encode(images)
        beam_one = [model._beam(memory[i : i + 1], 8, beam_size=1) for i in range(3)]
        beam_three = model.generate(images, max_length=8, beam_size=3)
    assert greedy == beam_one
    assert len(beam_three) == 3 and all(len(c) <= 8 for c in beam_three)
    assert all(model.eos_index not in c and model.bos_index not in c for c in beam_three)


def test_caption_explainer_runs_on_the_reference_captioner() -> None:
    model = small_captioner()
    explainer = CaptionExplainer(model, model.explained_layer)
    result = explainer.explain(torch.randn(2, 3, 128, 128), [[4, 6, 9], [5, 7]])
    assert result.words.labels[0] == ["a", "red", "circle"]
    assert result.words.raw.shape[-2:] == (16, 16)


def test_vqa_answer_logits_on_replicated_grid_equals_replicated_logits() -> None:
    model, replicas = small_vqa(), 3
    images = torch.randn(2, 3, 128, 128)
    questions = model.tokenize(["what color is the circle?", "is there a red star?"])
    with torch.no_grad():
        grid = model.encoder(images)
        once = model.answer_logits(grid, questions)
        many = model.answer_logits(
            grid.repeat_interleave(replicas, 0), questions.repeat_interleave(replicas, 0)
        )
        assert torch.allclose(model(images, questions), once, atol=1e-6)
    assert torch.allclose(many, once.repeat_interleave(replicas, dim=0), atol=1e-5)
    assert model.unknown_words("what colour is the hexagon?") == ["colour", "hexagon"]


def test_bigger_variant_builds_from_the_config_and_round_trips(tmp_path) -> None:
    vocab = Vocabulary(list(Vocabulary.SPECIALS) + WORDS)
    big = Captioner(CaptionerConfig(len(vocab), hidden_dim=512), vocab)
    assert big.cell.hidden_size == 512
    small = small_captioner(seed=1)
    loaded = load_captioner(save_captioner(small, tmp_path / "captioner"))
    images = torch.randn(1, 3, 128, 128)
    assert loaded.generate(images, 6) == small.generate(images, 6)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        (tmp_path / "captioner" / "vocab.json").unlink()
        load_captioner(tmp_path / "captioner")


# ----------------------------------------------------------------------------- committed models


def _samples() -> list[dict]:
    return json.loads((MODELS / "samples" / "samples.json").read_text())["samples"]


def _image(sample: dict) -> torch.Tensor:
    return preprocess(load_image(MODELS / "samples" / sample["file_name"]))[None]


@pytest.mark.skipif(not (MODELS / "captioner" / "model.pt").exists(), reason="not trained yet")
def test_committed_captioner_names_the_colours_of_the_samples_left_to_right() -> None:
    """The bundled captioner gets colours and their order right; kinds in 2-3 object scenes
    are its weak point (see models/captioner.md), so only the 1-object sample is checked whole."""
    model = load_captioner()
    colours = {"red", "green", "blue", "yellow", "purple", "orange"}
    for sample in _samples():
        caption = model.caption(_image(sample))[0]
        named = [w for w in caption.split() if w in colours]
        scene = [o["color"] for o in sample["objects"]]  # objects are listed left to right
        assert named and set(named) <= set(scene), (caption, scene)
        assert named[0] == scene[0], (caption, scene)
        if len(sample["objects"]) == 1:
            o = sample["objects"][0]
            assert caption == f"a {o['color']} {o['kind']}"


@pytest.mark.skipif(not (MODELS / "vqa" / "model.pt").exists(), reason="not trained yet")
def test_committed_vqa_model_answers_the_sample_questions() -> None:
    model = load_vqa_model()
    correct = total = 0
    for sample in _samples():
        for q in sample["questions"]:
            correct += model.answer(_image(sample), [q["question"]])[0] == q["answer"]
            total += 1
    assert correct >= total - 1, f"{correct} of {total} sample questions answered"
    explainer = VQAExplainer(model, model.explained_layer)
    sample = _samples()[0]
    colour = next(q for q in sample["questions"] if q["question"].startswith("what color"))
    result = explainer.explain(_image(sample), [colour["question"]], top_k=1)
    assert result.answers[0][0] == colour["answer"]


def _peak_inside(heat: torch.Tensor, bbox: list[float]) -> bool:
    row, column = divmod(int(heat.argmax()), heat.shape[-1])
    x, y, w, h = bbox
    return x <= column < x + w and y <= row < y + h


@pytest.mark.skipif(not (MODELS / "vqa" / "model.pt").exists(), reason="not trained yet")
def test_committed_vqa_answer_maps_peak_in_the_queried_shape() -> None:
    """HiResCAM of the answer to "what color is the <kind>?" peaks inside that shape's box
    (0 px tolerance) on every sample; evaluate_shapes.py measures 100% on the val split."""
    model = load_vqa_model()
    explainer = VQAExplainer(model, model.explained_layer)
    checked = 0
    for sample in _samples():
        for q in sample["questions"]:
            if not q["question"].startswith("what color is the "):
                continue
            kind = q["question"].removeprefix("what color is the ").rstrip("?")
            (shape,) = [o for o in sample["objects"] if o["kind"] == kind]
            result = explainer.explain(_image(sample), [q["question"]], top_k=1, method="hirescam")
            assert result.maps.maps.shape[-2:] == (128, 128)
            assert _peak_inside(result.maps.maps[0, 0], shape["bbox"]), (sample["file_name"], kind)
            checked += 1
    assert checked == len(_samples())


def test_bundled_blip_captions_the_samples_and_its_relevance_points_at_the_shapes() -> None:
    """The bundled BLIP names only colours and kinds the scene has, first the leftmost object
    (the captions' canonical order), and at least three in four shape words' relevance maps peak
    within 15/224 of the image (8.6 px) of a shape of that kind (the model card measures 0.919
    over 185 test words; the four samples hold 8)."""
    from mmcam.explainers.hf import load_hf_captioner

    captioner = load_hf_captioner(str(MODELS / "blip_captioner"))
    checked = hits = 0
    for sample in _samples():
        picture = load_image(MODELS / "samples" / sample["file_name"])
        result = captioner.explain_image(picture, method="relevance")
        caption = result.word_labels(0)
        kinds = {o["kind"] for o in sample["objects"]}
        colours = {o["color"] for o in sample["objects"]}
        named = [w for w in caption if w in {"circle", "square", "star", "triangle"}]
        assert named and set(named) <= kinds, (caption, sample["objects"])
        assert caption[1:3] == [sample["objects"][0]["color"], sample["objects"][0]["kind"]]
        assert {w for w in caption if w in colours | {"red", "green", "blue", "yellow",
                                                       "purple", "orange"}} <= colours  # fmt: skip
        for index, word in enumerate(caption):
            boxes = [o["bbox"] for o in sample["objects"] if o["kind"] == word]
            if boxes:
                heat = result.words.maps[0, index]
                tolerance = 15 / 224 * min(heat.shape)
                row, column = divmod(int(heat.argmax()), heat.shape[-1])
                hits += any(
                    x - tolerance <= column < x + w + tolerance
                    and y - tolerance <= row < y + h + tolerance
                    for x, y, w, h in boxes
                )
                checked += 1
    assert checked >= 6 and hits >= 0.75 * checked, f"{hits} of {checked} shape words"
