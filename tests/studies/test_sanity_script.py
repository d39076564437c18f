"""scripts/sanity_check.py end to end on a tiny shapes split with the bundled models: tables,
figures, metrics.json and the final JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_files import script

from mmcam.data.shapes import write_shapes


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "val", 2, seed=4)
    return root


def test_sanity_check_reports_both_tasks_figures_and_one_json_line(data, tmp_path, capsys):
    out = tmp_path / "out"
    line = script("sanity_check").main(
        ["--root", str(data), "--limit", "1", "--methods", "gradcam", "occlusion",
         "--occlusion", "64", "64", "--layers", "encoder.features.1", "--grids", "1",
         "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1]) == line
    assert "cascading randomisation, mean spearman" in printed
    for task in ("captions", "vqa"):
        assert set(line["spearman_full_randomisation"][task]) == {"gradcam", "occlusion"}
        assert (out / f"sanity_{task}_1.png").is_file()
        assert line["timing"][task]["check_s"] > 0
    assert set(line["spearman_label_randomised_twin"]) == {"vqa"}  # the bundled twin
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vqa"]["layers"] == ["encoder.features.1"]
    assert metrics["vqa"]["targets"] == 3  # the top 3 answers of one question
    step = metrics["vqa"]["cascading"]["encoder.features.1"]["gradcam"]
    assert set(step) == {"spearman", "spearman_abs", "ssim", "hog", "flat"}
    assert line["spearman_full_randomisation"]["vqa"]["gradcam"] == step["spearman"]
    assert (out / "sanity_curves.png").is_file()


def test_the_box_measure_alone_reports_each_tasks_default_boxes(data, tmp_path, capsys):
    out = tmp_path / "out"
    line = script("sanity_check").main(
        ["--root", str(data), "--limit", "2", "--boxes-only", "--layers", "encoder.features.1",
         "--out", str(out)]
    )  # fmt: skip
    assert "default boxes (hirescam at encoder.stem" in capsys.readouterr().out
    assert line["spearman_full_randomisation"] == {} and not (out / "sanity_curves.png").exists()
    for task in ("captions", "vqa"):
        boxes = line["boxes"][task]
        assert (boxes["method"], boxes["layer"]) == ("hirescam", "encoder.stem")  # the default's
        assert set(boxes["accuracy"]) == {"trained", "encoder.features.1"} and boxes["maps"] > 0
        assert boxes["depends_on_model"] == boxes["depends"]["encoder.features.1"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["vqa"]["boxes"] == line["boxes"]["vqa"]


def test_a_checkpoint_needs_one_task():
    with pytest.raises(SystemExit, match="give --task captions or --task vqa"):
        script("sanity_check").main(["--checkpoint", "models/vqa"])
