"""The training scripts end to end on a tiny shapes split: a loadable checkpoint and one JSON
line with the validation score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from repo_files import script

from mmcam.data.images import image_path, load_image
from mmcam.data.shapes import write_shapes
from mmcam.zoo.captioner import load_captioner
from mmcam.zoo.vqa_model import load_vqa_model


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


def test_training_refuses_an_existing_checkpoint_without_overwrite(data, tmp_path):
    out = tmp_path / "captioner"
    out.mkdir()
    (out / "model.pt").write_bytes(b"the checkpoint someone keeps")
    arguments = ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    with pytest.raises(FileExistsError, match="pass --overwrite to replace it"):
        script("train_captioner").main(arguments)
    assert [p.name for p in out.iterdir()] == ["model.pt"]
    assert (out / "model.pt").read_bytes() == b"the checkpoint someone keeps"
    script("train_captioner").main([*arguments, "--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "history.json", "model.pt", "vocab.json"
    ]  # fmt: skip
    assert load_captioner(out).config.vocab_size > 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


@pytest.mark.parametrize("name", ["train_captioner", "train_vqa"])
def test_training_writes_a_new_folder_by_default_never_the_bundled_models(name):
    out = Path(script(name).parse_args([]).out)
    assert out.parts[0] == "out" and out.name.startswith(name.removeprefix("train_") + "-")


def test_a_checkpoint_folder_appears_whole_or_not_at_all(data, tmp_path, monkeypatch):
    """A save that fails halfway (after config.json, before model.pt) leaves no folder, and
    over an existing checkpoint leaves the old one as it was."""
    import mmcam.zoo.captioner as captioner

    def fails_halfway(model, path):
        raise OSError("disk full")

    monkeypatch.setattr(captioner, "save_state_dict", fails_halfway)
    out = tmp_path / "new"
    arguments = ["--data", str(data), "--epochs", "1", "--batch-size", "4"]
    with pytest.raises(OSError, match="disk full"):
        script("train_captioner").main([*arguments, "--out", str(out)])
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.pt").write_bytes(b"old weights")
    with pytest.raises(OSError, match="disk full"):
        script("train_captioner").main([*arguments, "--out", str(old), "--overwrite"])
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert [p.name for p in old.iterdir()] == ["model.pt"]


def test_train_vqa_trains_a_vilt_that_loads_like_a_hub_checkpoint(data, tmp_path, capsys):
    """`--model vilt` writes the Hugging Face format; `load_hf_vqa` (what `--hf FOLDER` runs)
    answers with the trained classifier, and the explained adapter's logits are the training
    model's (same image, same question)."""
    from mmcam.data.training_sets import VQADataset, collate_vqa
    from mmcam.explainers.hf import load_hf_vqa
    from mmcam.zoo.vilt_vqa import TrainableVilt

    out = tmp_path / "vilt"
    line = script("train_vqa").main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
         "--model", "vilt", "--dim", "32", "--layers", "2", "--heads", "2"]
    )  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert line["model"] == "vilt_vqa" and 0 <= line["best_overall"] <= 1
    assert {"config.json", "model.safetensors", "history.json"} <= {p.name for p in out.iterdir()}
    adapter = load_hf_vqa(str(out))
    trained = TrainableVilt(adapter.model, adapter.processor).eval()
    val = VQADataset(data, "val", trained.vocab, trained.answers)
    batch = collate_vqa([val[0]])
    questions = [item.question for item in val.items[val.image_ids[0]]]
    image = load_image(image_path(data, "val", val.image_ids[0]))
    pixels = adapter.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixels, batch["images"], atol=1e-6, rtol=0)  # same input
    with torch.no_grad():
        expected = trained.question_logits(
            batch["images"], batch["image_index"], batch["questions"]
        )
        got = adapter(pixels.expand(len(questions), -1, -1, -1), adapter.tokenize(questions))
    assert adapter.answers == trained.answers and got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_train_captioner_trains_a_blip_that_loads_like_a_hub_checkpoint(data, tmp_path, capsys):
    """`--model blip` trains the BLIP adapter the explainers use; its folder loads with
    `load_hf_captioner` (what `--hf FOLDER` runs) and captions, the training data is read with
    its tokenizer, and its processor gives the training images."""
    from mmcam.data.training_sets import CaptionDataset
    from mmcam.explainers.hf import load_hf_captioner
    from mmcam.zoo.blip_captioner import CaptionTokens

    out = tmp_path / "blip"
    line = script("train_captioner").main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
         "--model", "blip", "--hidden", "32", "--layers", "1", "--heads", "2"]
    )  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == line
    assert line["model"] == "blip_captioner" and 0 <= line["best_nltk_bleu4"] <= 1
    history = json.loads((out / "history.json").read_text())["history"][0]
    assert {"bleu4", "cider", "nltk_bleu4"} <= set(history)
    captioner = load_hf_captioner(str(out))
    limit = captioner.model.config.text_config.max_position_embeddings
    val = CaptionDataset(data, "val", CaptionTokens(captioner.tokenizer, limit))
    image, captions = val[0]
    assert captions[0][0] == captioner.bos_index and captions[0][-1] == captioner.eos_index
    picture = load_image(image_path(data, "val", val.image_ids[0]))
    pixels = captioner.preprocess(picture).pixel_values
    torch.testing.assert_close(pixels[0], image, atol=1e-6, rtol=0)
    caption = captioner.generate(pixels, max_length=5)[0]
    assert len(caption) <= 5 and all(isinstance(word, str) for word in captioner.words(caption))
