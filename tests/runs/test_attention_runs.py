"""Dataset runs by the attention methods on transformers (--hf): the maps are those the attention
stack's explainer gives for the same image and text, VQA records carry each answer's question-
token relevance, and a model without an attention stack is refused before any file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hf_checkpoints import save_tiny_checkpoints
from repo_files import script

from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.files import RefusedInput
from mmcam.data.images import image_path, load_image
from mmcam.data.shapes import write_shapes
from mmcam.explainers.attention_stack import CaptionStackExplainer, VQAStackExplainer
from mmcam.explainers.hf import load_hf_captioner, load_hf_vqa

COMMON = ["--split", "val", "--limit", "2", "--deletion-steps", "0", "--road-fractions", "none",
          "--workers", "0", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "val", 2, seed=0)
    return root, save_tiny_checkpoints(tmp_path_factory.mktemp("hf"))


def records(folder):
    return [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]


def test_vqa_relevance_run_maps_and_question_relevance_equal_the_explainers(shapes, tmp_path):
    root, hf = shapes
    out = tmp_path / "relevance"
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        script("explain_vqa").main(
            ["--root", str(root), *COMMON, "--hf", str(hf["vilt"]), "--out", str(out),
             "--method", "relevance"]
        )  # fmt: skip
    report = (out / "report.txt").read_text()
    assert report.startswith("maps: relevance at layer every attention layer after model.vilt.")
    adapter = load_hf_vqa(str(hf["vilt"]))
    stack = VQAStackExplainer(adapter, adapter.attention_layout(), adapter.to_grid)
    paths = split_paths(root, "val")
    questions = {q.question_id: q for q in read_vqa(paths["questions"], paths["vqa_annotations"])}
    found = [record for record in records(out) if "answer" in record]  # known words only
    assert len(found) >= 4
    with np.load(out / "maps.npz") as maps:
        for record in found:
            item = questions[record["question_id"]]
            image = load_image(image_path(root, "val", item.image_id))
            pixels = adapter.preprocess(image).pixel_values
            alone = stack.explain(pixels, [item.question], top_k=3, method="relevance")
            assert record["top_answers"] == alone.answers[0]
            np.testing.assert_allclose(
                maps[str(item.question_id)], alone.maps.raw[0].numpy(), rtol=1e-5, atol=1e-7
            )
            tokens, relevance = record["question_tokens"], np.array(record["question_relevance"])
            assert relevance.shape == (3, len(tokens))  # one row per top answer
            kept = [t for t in tokens if t != "[PAD]"]
            assert kept == alone.question_tokens[0] and kept[0] == "[CLS]"
            np.testing.assert_allclose(
                relevance[:, : len(kept)], alone.question_relevance[0].numpy(), atol=1e-7
            )
            assert (relevance[:, len(kept) :] == 0).all()  # padding used by no answer


def test_caption_relevance_run_maps_every_word_as_the_explainer_does(shapes, tmp_path):
    root, hf = shapes
    out = tmp_path / "relevance"
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        script("explain_captions").main(
            ["--root", str(root), *COMMON, "--hf", str(hf["blip"]), "--out", str(out),
             "--method", "relevance", "--max-length", "3"]
        )  # fmt: skip
    captioner = load_hf_captioner(str(hf["blip"]))
    stack = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    with np.load(out / "maps.npz") as maps:
        for record in records(out):
            pixels = captioner.preprocess(
                load_image(image_path(root, "val", record["image_id"]))
            ).pixel_values
            caption = captioner.generate(pixels, 3, 1)[0]
            alone = stack.explain(pixels, [caption], method="relevance")
            assert record["words"] == alone.word_labels(0)
            expected = alone.words.raw[0, : len(record["words"])].numpy()
            np.testing.assert_allclose(maps[str(record["image_id"])], expected, atol=1e-7)


@pytest.mark.parametrize("method", ["relevance", "rollout"])
def test_an_attention_method_for_a_model_without_attention_is_refused_before_any_file(
    shapes, tmp_path, method
):
    root, _ = shapes
    refusal = "not offered for vqa models; choose one of gradcam.*need a transformer"
    with pytest.raises(RefusedInput, match=refusal):
        script("explain_vqa").main(
            ["--root", str(root), *COMMON, "--out", str(tmp_path / "cnn"), "--method", method]
        )
    assert not (tmp_path / "cnn").exists()


def test_choose_boxes_adds_the_attention_methods_rows_and_keeps_the_others(shapes, tmp_path):
    from mmcam.boxes.settings import BOX_SETTINGS

    root, hf = shapes
    table = tmp_path / "box_settings.json"
    table.write_text(BOX_SETTINGS.read_text())
    before = json.loads(table.read_text())
    line = script("choose_boxes").main(
        ["--root", str(root), "--split", "val", "--limit", "2", "--workers", "0",
         "--hf-captioner", str(hf["blip"]), "--table", str(table), "--out", str(tmp_path / "runs")]
    )  # fmt: skip
    after = json.loads(table.read_text())
    methods = set(CaptionStackExplainer.offered())
    assert set(line["methods"]) == methods
    assert {m: after["methods"][m] for m in methods} == line["methods"]
    kept = {m: v for m, v in after["methods"].items() if m not in methods}
    assert kept == {m: v for m, v in before["methods"].items() if m not in methods}
    assert after["default"] == before["default"]
    assert after["attention_chosen_on"].startswith(f"{hf['blip']} caption words")
    for method in methods:  # each method's dataset run is where the table says it chose
        assert (tmp_path / "runs" / "captions" / f"{method}@blip" / "items.jsonl").is_file()
