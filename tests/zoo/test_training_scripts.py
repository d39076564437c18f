"""The training scripts end to end on a tiny shapes split: a loadable checkpoint and one JSON
line with the validation score."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmcam.data.shapes import write_shapes
from mmcam.zoo.captioner import load_captioner
from mmcam.zoo.vqa_model import load_vqa_model

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "train", 12, seed=1)
    write_shapes(root, "val", 4, seed=2)
    return root


def test_train_captioner_writes_a_loadable_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "captioner"
    line = script("train_captioner").main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
         "--references", "1", "--zero-start"]
    )  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert line["model"] == "captioner" and 0 <= line["best_nltk_bleu4"] <= 1
    epoch = json.loads((out / "history.json").read_text())["history"][0]
    assert {"bleu4", "meteor", "rouge_l", "cider", "nltk_bleu4"} <= set(epoch)  # pycocoevalcap
    model = load_captioner(out)
    assert model.config.start_from_image is False
    assert len(model.generate(torch.zeros(1, 3, 128, 128), max_length=5)) == 1


def test_train_vqa_writes_a_loadable_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "vqa"
    line = script("train_vqa").main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert line["model"] == "vqa" and 0 <= line["best_overall"] <= 1
    model = load_vqa_model(out)
    logits = model(torch.zeros(2, 3, 128, 128), model.tokenize(["what color is it?", "is it"]))
    assert logits.shape == (2, len(model.answers))
