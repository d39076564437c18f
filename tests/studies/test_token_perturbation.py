"""Chefer et al.'s token perturbation test: the removal order by hand, the area by hand, a
removed ViLT patch that no longer reaches the answer, and the script's figures on a tiny ViLT."""

from __future__ import annotations

import json

import pytest
import torch
from hf_checkpoints import save_tiny_checkpoints
from repo_files import script

from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.images import image_path, load_image
from mmcam.data.shapes import write_shapes
from mmcam.evaluation.token_perturbation import REMOVAL_STEPS, curve_auc, kept_tokens
from mmcam.evaluation.vqa_accuracy import vqa_accuracy
from mmcam.explainers.hf import load_hf_vqa
from mmcam.studies.token_perturbation import perturbation_methods, vqa_token_curves


def test_tokens_are_removed_most_or_least_relevant_first_and_the_kept_ones_never():
    relevance = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.2])
    removable = torch.tensor([False, True, True, True, False])  # [CLS] ... [SEP]
    steps = (0.0, 0.34, 0.67, 1.0)  # 0, 1, 2 and 3 of the 3 removable tokens
    positive = kept_tokens(relevance, steps, removable=removable)
    assert positive.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 1], [1, 0, 1, 0, 1], [1, 0, 0, 0, 1]]
    negative = kept_tokens(relevance, steps, positive=False, removable=removable)
    assert negative.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [1, 0, 0, 1, 1], [1, 0, 0, 0, 1]]
    ties = torch.zeros(8)
    assert torch.equal(kept_tokens(ties, seed=3), kept_tokens(ties, seed=3))
    assert not torch.equal(kept_tokens(ties, seed=3), kept_tokens(ties, seed=4))


def test_the_area_is_the_trapezoid_over_the_uneven_steps():
    scores = [1, 1, 1, 1, 0, 0, 0, 0, 0]  # the answer holds until 75% of the tokens are gone
    assert curve_auc(scores) == pytest.approx(0.75 + 0.05 / 2)
    with pytest.raises(ValueError, match="3 scores for 9 removal steps"):
        curve_auc([1, 0, 0])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "val", 2, seed=0)
    return root, save_tiny_checkpoints(tmp_path_factory.mktemp("hf"))["vilt"]


def test_a_removed_patch_no_longer_reaches_the_answer(shapes):
    _, vilt = shapes
    adapter = load_hf_vqa(str(vilt))
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 48, 48)
    tokens = adapter.tokenize(["what color is the circle"])
    keep = torch.ones(1, 9)
    keep[0, 4] = 0  # the centre patch of the 3 x 3 grid
    changed = pixels.clone()
    changed[..., 16:32, 16:32] = torch.randn(3, 16, 16)  # only that patch's pixels
    with torch.no_grad():
        full = adapter(pixels, {**tokens, "patch_keep": torch.ones(1, 9)})
        plain = adapter(pixels, tokens)
        removed = adapter(pixels, {**tokens, "patch_keep": keep})
        other = adapter(changed, {**tokens, "patch_keep": keep})
        seen = adapter(changed, tokens)
    torch.testing.assert_close(full, plain)
    torch.testing.assert_close(other, removed, atol=1e-6, rtol=0)  # the patch is not seen
    assert not torch.allclose(seen, plain, atol=1e-4)  # while kept, it was


def test_the_curves_start_at_the_models_accuracy_and_the_script_prints_their_areas(shapes, capsys):
    root, vilt = shapes
    adapter = load_hf_vqa(str(vilt))
    paths = split_paths(root, "val")
    items = [(q, image_path(root, "val", q.image_id))
             for q in read_vqa(paths["questions"], paths["vqa_annotations"])]  # fmt: skip
    curves = vqa_token_curves(adapter, items)
    assert curves.count == len(items)
    accuracy = 0.0
    for item, file in items:
        answer = adapter.explain_image(load_image(file), item.question)
        accuracy += vqa_accuracy(answer.answers[0][0], list(item.answers))
    for (method, tokens, direction), total in curves.sums.items():
        assert float(total[0]) == pytest.approx(accuracy), (method, tokens, direction)
    line = script("token_perturbation").main(
        ["--hf", str(vilt), "--root", str(root), "--split", "val", "--limit", "2"]
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert line["questions"] == len(items) and len(REMOVAL_STEPS) == 9
    methods = [*perturbation_methods(), "random"]
    assert list(line["positive_auc"]) == methods and list(line["negative_auc"]) == methods
    assert set(line["text_positive_auc"]) == set(methods) - {"gradcam"}  # no question relevance
    for key in ("positive_auc", "text_positive_auc"):  # a random order is one order
        assert line[key]["random"] == line[key.replace("positive", "negative")]["random"]
    assert line["positive_auc"] == {
        method: pytest.approx(value)
        for method, value in vqa_token_curves(adapter, items).aucs()["positive_auc"].items()
    }


def test_a_blip_patch_removed_before_the_encoder_no_longer_reaches_the_caption(tmp_path):
    from mmcam.explainers.hf import load_hf_captioner

    captioner = load_hf_captioner(str(save_tiny_checkpoints(tmp_path)["blip"]))
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        full = captioner.encode(pixels)
        assert torch.equal(captioner.encode(pixels, patch_keep=torch.ones(16)), full)
        keep = torch.ones(16)
        keep[5] = 0  # row 1, column 1 of the 4 x 4 grid: pixels 8-15
        removed = captioner.encode(pixels, patch_keep=keep)
        changed = pixels.clone()
        changed[..., 8:16, 8:16] = torch.randn(3, 8, 8)
        assert removed.shape == (1, 16, full.shape[-1])  # the class token and 15 patches
        assert torch.equal(captioner.encode(changed, patch_keep=keep), removed)  # not seen
        assert not torch.allclose(captioner.encode(changed), full, rtol=1e-3, atol=0)  # seen


def test_caption_curves_start_at_each_words_log_probability(tmp_path):
    from mmcam.explainers.hf import load_hf_captioner
    from mmcam.studies.token_perturbation import caption_token_curves

    hf = save_tiny_checkpoints(tmp_path)
    captioner = load_hf_captioner(str(hf["blip"]))
    root = tmp_path / "shapes"
    write_shapes(root, "val", 2, seed=0)
    files = sorted((root / "val2014").iterdir())
    curves = caption_token_curves(captioner, files, ["relevance", "gradcam"])
    expected = 0.0
    for file in files:
        pixels = captioner.preprocess(load_image(file)).pixel_values
        caption = captioner.generate(pixels)[0]
        tokens = torch.tensor([[captioner.bos_index, *caption]])
        with torch.no_grad():
            logits = captioner.decode_logits(captioner.encode(pixels), tokens, None)
        logprobs = torch.log_softmax(logits[0], dim=-1)
        expected += sum(float(logprobs[t, word]) for t, word in enumerate(caption))
    assert curves.count > 0
    for key, total in curves.sums.items():
        assert float(total[0]) == pytest.approx(expected, abs=1e-4), key
    figures = curves.aucs()
    assert set(figures) == {"positive_auc", "negative_auc"}  # no question tokens
    assert figures["positive_auc"]["random"] == figures["negative_auc"]["random"]
