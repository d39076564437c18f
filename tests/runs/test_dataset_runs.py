"""Dataset runs through the real scripts on a tiny shapes split with bad files: outputs, metrics
checked against oracles, bad data reported, kill -9 and resume, torchrun with 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_checkpoints import ANSWERS, save_tiny_checkpoints
from pause_after_chunks import kill_after_chunks
from PIL import Image
from repo_files import script

from mmcam.boxes.from_maps import smooth_maps
from mmcam.boxes.settings import default_method
from mmcam.data.annotations import CocoInstance, read_coco_captions, read_vqa, split_paths
from mmcam.data.files import read_json, write_json
from mmcam.data.images import load_image
from mmcam.data.shapes import write_shapes
from mmcam.data.training_sets import top_answers
from mmcam.data.vocab import Vocabulary, tokenize
from mmcam.evaluation.box_metrics import DEFAULT_THRESHOLDS
from mmcam.evaluation.caption_metrics import caption_bleu, coco_caption_scores
from mmcam.evaluation.faithfulness import blur_image
from mmcam.evaluation.vqa_accuracy import vqa_accuracy
from mmcam.explainers.captioning import CaptionExplainer
from mmcam.explainers.vqa import VQAExplainer
from mmcam.runs.faithfulness import FAITHFULNESS_KEYS, faithfulness_scores
from mmcam.runs.models import load_run_captioner, load_run_vqa
from mmcam.runs.options import RunOptions
from mmcam.runs.outputs import read_map
from mmcam.runs.report import caption_metrics, vqa_metrics
from mmcam.runs.scoring import ground_truth_boxes, score_map
from mmcam.zoo.captioner import Captioner, CaptionerConfig, save_captioner
from mmcam.zoo.vqa_model import VQAConfig, VQANet, save_vqa_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
MISSING, TRUNCATED, NOT_AN_IMAGE = 3, 4, 5
GRAY, RGBA, SIXTEEN_BIT = 6, 7, 8
NONSENSE_QUESTION = 199
OPTIONS = [
    "--chunk-size", "2", "--batch-size", "2", "--deletion-steps", "3", "--tie-orders", "2",
    "--road-fractions", "0.5",
    "--pointing-tolerance", "0", "--workers", "1", "--no-progress",
]  # fmt: skip
OUTPUTS = {
    "captions": ["captions_results.json", "boxes_results.json", "maps.npz", "items.jsonl",
                 "metrics.json", "report.txt"],
    "vqa": ["vqa_results.json", "boxes_results.json", "maps.npz", "items.jsonl", "metrics.json",
            "report.txt"],
}  # fmt: skip


@contextmanager
def one_thread():
    """Run in-process with the subprocesses' thread count, so the numbers match bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """10 shapes val scenes; 3 unreadable files, 3 images in other modes, a nonsense question;
    and a tiny untrained captioner and VQA model saved as checkpoints."""
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "val", 10, seed=0)
    paths = split_paths(root, "val")
    folder = paths["images"]

    def file(image_id: int) -> Path:
        return folder / f"COCO_val2014_{image_id:012d}.png"

    file(MISSING).unlink()
    data = file(TRUNCATED).read_bytes()
    file(TRUNCATED).write_bytes(data[: len(data) // 2])
    file(NOT_AN_IMAGE).write_text("this is not a picture")
    Image.open(file(GRAY)).convert("L").save(file(GRAY))
    Image.open(file(RGBA)).convert("RGBA").save(file(RGBA))
    gray = np.asarray(Image.open(file(SIXTEEN_BIT)).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(file(SIXTEEN_BIT))
    assert Image.open(file(SIXTEEN_BIT)).mode.startswith("I;16")

    questions = read_json(paths["questions"])
    questions["questions"].insert(
        1, {"image_id": 1, "question": "xyzzy plugh?", "question_id": NONSENSE_QUESTION}
    )
    write_json(paths["questions"], questions)
    annotations = read_json(paths["vqa_annotations"])
    annotations["annotations"].append(
        {
            "question_id": NONSENSE_QUESTION,
            "image_id": 1,
            "answers": [{"answer": "yes", "answer_id": i + 1} for i in range(10)],
            "multiple_choice_answer": "yes",
            "answer_type": "yes/no",
            "question_type": "none of the above",
        }
    )
    write_json(paths["vqa_annotations"], annotations)

    torch.manual_seed(0)
    models = tmp_path_factory.mktemp("models")
    references = read_coco_captions(paths["captions"]).captions
    vocab = Vocabulary.build(c for captions in references.values() for c in captions)
    config = CaptionerConfig(
        len(vocab), [8, 8, 8], memory_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8
    )
    save_captioner(Captioner(config, vocab), models / "captioner")
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    words = Vocabulary.build(item.question for item in items if item.question_id < 199)
    answers = top_answers(items, 20)
    config = VQAConfig(len(words), len(answers), [8, 8, 8], dim=16, embed_dim=8, hidden_dim=16)
    save_vqa_model(VQANet(config, words, answers), models / "vqa")
    return {"root": root, "paths": paths, "models": models, "references": references}


def arguments(dataset: dict, task: str, out: Path) -> list[str]:
    model = "captioner" if task == "captions" else "vqa"
    short = ["--max-length", "4"] if task == "captions" else []
    return [
        "--root", str(dataset["root"]), "--checkpoint", str(dataset["models"] / model),
        "--out", str(out), *OPTIONS, *short,
    ]  # fmt: skip


def command(dataset: dict, task: str, out: Path) -> list[str]:
    name = "explain_captions" if task == "captions" else "explain_vqa"
    return [str(SCRIPTS / f"{name}.py"), *arguments(dataset, task, out)]


@pytest.fixture(scope="module")
def captions_run(dataset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("captions")
    with one_thread():
        line = script("explain_captions").main(
            arguments(dataset, "captions", out) + ["--save-figures", "2"]
        )
    return out, line


@pytest.fixture(scope="module")
def vqa_run(dataset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vqa")
    with one_thread():
        line = script("explain_vqa").main(arguments(dataset, "vqa", out) + ["--save-figures", "2"])
    return out, line


def items(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]


def assert_same_outputs(ours: Path, reference: Path, task: str) -> None:
    for name in OUTPUTS[task]:
        assert (ours / name).read_bytes() == (reference / name).read_bytes(), name
    assert not list(ours.rglob("*.tmp"))


# ----------------------------------------------------------------------------- captions


def test_captions_run_writes_results_maps_boxes_and_bleu_of_every_readable_image(
    captions_run, dataset
):
    out, line = captions_run
    records = items(out)
    readable = [1, 2, GRAY, RGBA, SIXTEEN_BIT, 9, 10]
    results = json.loads((out / "captions_results.json").read_text())
    assert [r["image_id"] for r in results] == readable
    assert [r["image_id"] for r in records] == list(range(1, 11))
    metrics = json.loads((out / "metrics.json").read_text())
    references = dataset["references"]
    expected = caption_bleu(
        [tokenize(r["caption"]) for r in results],
        [[tokenize(c) for c in references[r["image_id"]]] for r in results],
    )
    assert metrics["nltk_bleu"] == pytest.approx(expected, abs=1e-12)
    coco = coco_caption_scores(
        {r["image_id"]: r["caption"] for r in results},
        {r["image_id"]: references[r["image_id"]] for r in results},
    )
    for name in ("bleu4", "meteor", "rouge_l", "cider"):
        assert metrics[name] == pytest.approx(coco[name], abs=1e-12) and line[name] == metrics[name]
    assert metrics["bleu"]["bleu1"] == pytest.approx(coco["bleu1"], abs=1e-12)
    report = (out / "report.txt").read_text()
    assert metrics["spice"] is None and "SPICE unavailable" in report
    assert "CorLoc (top box of each named pair" in report and "pointing game at 0 px" in report
    assert line["images"] == line["images_explained"] == 10
    default = default_method()  # no --method: the default, at its layer for this architecture
    assert (metrics["method"], metrics["layer"]) == (default.method, default.layers["Captioner"])
    side = {"encoder.stem": 32, "encoder.features": 16}[metrics["layer"]]  # the layer's grid
    with np.load(out / "maps.npz") as maps:
        for record in records:
            if record.get("words"):
                assert maps[str(record["image_id"])].shape == (len(record["words"]), side, side)
    detections = json.loads((out / "boxes_results.json").read_text())
    assert detections == [
        {"image_id": r["image_id"], "category_id": m["category_id"], "bbox": m["box"],
         "score": m["box_score"]}
        for r in records for m in r.get("mentions", []) if m["box"]
    ]  # fmt: skip
    for key in ("loc_accuracy", "maxboxacc", "pointing", "pointing_0px", "deletion_auc"):
        assert key in metrics
    named = {(r["image_id"], m["category_id"]) for r in records for m in r.get("mentions", [])}
    assert metrics["box_detection"]["named_pairs"] == len(named)
    assert metrics["box_detection"]["boxes"] == len(detections)
    for key in ("coco_ap", "coco_ap50", "corloc", "pointing_0px"):
        assert key in line
    assert line["corloc"] == metrics["corloc"] and line["coco_ap"] == metrics["coco_ap"]
    kind = metrics["boxes"]  # both kinds of box scored, the default's figures as the top ones
    assert metrics[f"boxes_{kind}"]["coco_ap50"] == metrics["coco_ap50"]
    assert metrics[f"boxes_{kind}"]["corloc"] == metrics["corloc"]
    for kind in ("threshold", "refined"):
        assert line[f"corloc_{kind}"] == metrics[f"boxes_{kind}"]["corloc"]
        assert line[f"coco_ap50_{kind}"] == metrics[f"boxes_{kind}"]["coco_ap50"]
    for key in FAITHFULNESS_KEYS:  # deletion, insertion, ROAD most / least relevant first
        assert set(metrics[key]) >= {"map", "random", "center", "count"}
        assert metrics[key]["count"] == len([r for r in records if r.get("words")])
        for name in ("map", "random", "center"):
            assert line[f"{key}_{name}"] == metrics[key][name]
    assert metrics["deletion_auc"]["steps"] == 3 and metrics["road_morf"]["fractions"] == [0.5]
    assert 0 < metrics["map_support"] <= 1 and line["map_support"] == metrics["map_support"]
    assert "ROAD most relevant first" in report and "mean support" in report
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["1.png", "2.png"]


def test_captions_run_reports_unreadable_and_converted_images(captions_run):
    out, line = captions_run
    bad = json.loads((out / "metrics.json").read_text())["bad_data"]
    assert bad["failed_images"]["ids"] == [MISSING, TRUNCATED, NOT_AN_IMAGE]
    errors = bad["failed_images"]["errors"]
    assert "does not exist" in errors[str(MISSING)]
    assert "not a readable image" in errors[str(TRUNCATED)]
    assert "not a readable image" in errors[str(NOT_AN_IMAGE)]
    converted = {mode: row["ids"] for mode, row in bad["converted_to_rgb"].items()}
    assert converted == {"L": [GRAY], "RGBA": [RGBA], "I;16": [SIXTEEN_BIT]}
    report = (out / "report.txt").read_text()
    assert "unreadable images (skipped): 3" in report
    assert f"  {TRUNCATED}: " in report and "converted to RGB from I;16: 1 [8]" in report
    assert line["failed_images"] == 3


def test_read_map_gives_the_stored_word_maps_in_image_pixels(captions_run):
    out, _ = captions_run
    record = next(r for r in items(out) if r.get("words"))
    explanation = read_map(out, record["image_id"], record["size"])
    with np.load(out / "maps.npz") as maps:
        np.testing.assert_array_equal(explanation.raw.numpy(), maps[str(record["image_id"])])
    assert tuple(explanation.maps.shape) == (len(record["words"]), 128, 128)


def test_captions_run_killed_with_sigkill_resumes_to_identical_outputs(
    captions_run, dataset, tmp_path
):
    reference, _ = captions_run
    # The reference also drew figures; everything else must be the same bytes.
    # Killed where it stops after its second chunk of five (pause_after_chunks.py), not after
    # a guessed time: the same state on a busy machine and an idle one.
    kill_after_chunks(2, command(dataset, "captions", tmp_path), env=ENV)
    parts = tmp_path / "parts"
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.json")}
    assert len(before) == 2 and not (tmp_path / "metrics.json").exists()
    subprocess.run([sys.executable, *command(dataset, "captions", tmp_path)], env=ENV, check=True)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.json")}
    assert all(after[name] == stamp for name, stamp in before.items())  # nothing redone
    assert len(after) == 5
    assert_same_outputs(tmp_path, reference, "captions")


def test_restarting_with_other_options_is_refused(captions_run, dataset):
    out, _ = captions_run
    with pytest.raises(RuntimeError, match="holds a run with other settings"):
        script("explain_captions").main(
            arguments(dataset, "captions", out) + ["--box-threshold", "0.3"]
        )


def test_another_layer_is_explained_on_request_and_an_unknown_one_is_listed(dataset, tmp_path):
    options = arguments(dataset, "vqa", tmp_path) + ["--limit", "2", "--deletion-steps", "0"]
    with one_thread():
        script("explain_vqa").main(options + ["--method", "gradcam", "--layer", "encoder.stem"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["layer"] == "encoder.stem"
    assert "maps: gradcam at layer encoder.stem" in (tmp_path / "report.txt").read_text()
    record = next(r for r in items(tmp_path) if "error" not in r)
    assert read_map(tmp_path, record["question_id"]).raw.shape[-2:] == (32, 32)  # stride 4
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="no layer named 'encoder.stm'.*encoder.stem"):
        script("explain_vqa").main(options + ["--layer", "encoder.stm", "--out", str(elsewhere)])
    assert not elsewhere.exists()


PIXEL_RUNS = {  # method: (its options on the command line, the explainers' perturbation)
    "guided_backprop": ([], None),
    "occlusion": (["--window", "32", "--stride", "32"], {"window": 32, "stride": 32}),
    "rise": (["--masks", "24", "--cell", "32"], {"n_masks": 24, "cell": 32, "p": 0.5}),
}


@pytest.mark.parametrize("method", list(PIXEL_RUNS))
@pytest.mark.parametrize("task", ["captions", "vqa"])
def test_pixel_space_runs_store_the_explainers_maps_at_input_resolution(
    dataset, tmp_path, task, method
):
    given, perturbation = PIXEL_RUNS[method]
    options = ["--method", method, *given, "--smooth", "2", "--limit", "2"]
    with one_thread():
        script("explain_captions" if task == "captions" else "explain_vqa").main(
            arguments(dataset, task, tmp_path) + options
        )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["layer"] is None
    assert metrics["smooth"] == 2
    report = (tmp_path / "report.txt").read_text()
    assert f"maps: {method} in pixel space, blurred by a Gaussian of sigma 2 px" in report
    record = next(r for r in items(tmp_path) if r.get("words") or r.get("answer"))
    file = dataset["paths"]["images"] / f"COCO_val2014_{record['image_id']:012d}.png"
    how = {"method": method, "perturbation": perturbation}
    if task == "captions":
        model = load_run_captioner(dataset["models"] / "captioner")
        explainer = CaptionExplainer(model.model, model.layer)
        key, pixels = record["image_id"], model.preprocess(load_image(file))[None]
        expected = explainer.explain(pixels, max_length=4, **how).words.maps[0]
    else:
        model = load_run_vqa(dataset["models"] / "vqa")
        explainer = VQAExplainer(model.model, model.layer)
        key, pixels = record["question_id"], model.preprocess(load_image(file))[None]
        expected = explainer.explain(pixels, [record["question"]], **how).maps.maps[0]
    with np.load(tmp_path / "maps.npz") as maps:
        stored = maps[str(key)]
    assert stored.dtype == np.float16 and stored.shape == (len(expected), 128, 128)
    np.testing.assert_allclose(stored, expected.numpy(), atol=2e-3, rtol=0)
    assert read_map(tmp_path, key, (64, 96)).maps.shape == (len(expected), 64, 96)
    if task == "vqa" and method == "guided_backprop":  # the map's own box: the blurred map's
        stamp = json.loads((tmp_path / "run.json").read_text())["options"]
        options = RunOptions(box_threshold=stamp["box_threshold"])
        blurred = score_map(smooth_maps(expected[0], 2), (128, 128), None, options)
        assert record["threshold_box"] == blurred["box"]
        assert record["threshold_box"] != score_map(expected[0], (128, 128), None, options)["box"]


# ----------------------------------------------------------------------------- VQA


def test_vqa_run_scores_answers_with_the_official_accuracy(vqa_run, dataset):
    out, line = vqa_run
    records = items(out)
    annotations = {
        item.question_id: item.answers
        for item in read_vqa(dataset["paths"]["questions"], dataset["paths"]["vqa_annotations"])
    }
    assert sorted(r["question_id"] for r in records) == sorted(annotations)
    expected = [vqa_accuracy(r.get("answer", ""), annotations[r["question_id"]]) for r in records]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vqa_accuracy"] == pytest.approx(sum(expected) / len(expected), abs=1e-12)
    results = json.loads((out / "vqa_results.json").read_text())
    assert {r["question_id"]: r["answer"] for r in results} == {
        r["question_id"]: r["answer"] for r in records if "answer" in r
    }
    assert line["vqa_accuracy"] == metrics["vqa_accuracy"]
    with np.load(out / "maps.npz") as maps:
        assert sorted(int(k) for k in maps.files) == sorted(r["question_id"] for r in results)
        side = {"encoder.stem": 32, "encoder.features": 16}[metrics["layer"]]
        assert maps[str(results[0]["question_id"])].shape == (3, side, side)
    assert metrics["layer"] == default_method().layers["VQANet"]
    assert (out / "figures" / "1.png").exists()


def test_vqa_run_skips_a_question_with_no_known_words_and_the_questions_of_bad_images(vqa_run):
    out, line = vqa_run
    metrics = json.loads((out / "metrics.json").read_text())
    bad = metrics["bad_data"]
    assert bad["skipped_questions"]["ids"] == [NONSENSE_QUESTION]
    assert "no known words" in bad["skipped_questions"]["reasons"][str(NONSENSE_QUESTION)]
    assert bad["failed_images"]["ids"] == [MISSING, TRUNCATED, NOT_AN_IMAGE]
    records = items(out)
    failed = [r for r in records if "error" in r]
    assert {r["image_id"] for r in failed} == {MISSING, TRUNCATED, NOT_AN_IMAGE}
    assert bad["failed_images"]["questions"] == len(failed)
    assert metrics["answered"] == len(records) - len(failed) - 1
    assert "questions skipped: 1" in (out / "report.txt").read_text()
    assert line["skipped_questions"] == 1


def test_two_torchrun_processes_write_what_one_process_writes(vqa_run, dataset, tmp_path):
    reference, _ = vqa_run
    subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2",
         *command(dataset, "vqa", tmp_path)],
        check=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert_same_outputs(tmp_path, reference, "vqa")
    assert json.loads((tmp_path / "timing.json").read_text())["processes"] == 2


# ----------------------------------------------------------------------------- data mismatches

UNKNOWN, TINY = 999, 2


@pytest.fixture(scope="module")
def mismatched_runs(dataset, tmp_path_factory) -> dict:
    """Both runs over a copy of the dataset whose captions file has two captions of image 999
    (not in its 'images') and whose image 2 is a 1 x 1 file (annotated 128 x 128): each run's
    output folder, JSON line and warnings."""
    root = tmp_path_factory.mktemp("mismatched") / "shapes"
    shutil.copytree(dataset["root"], root)
    paths = split_paths(root, "val")
    captions = read_json(paths["captions"])
    captions["annotations"] += [
        {"id": 90000 + i, "image_id": UNKNOWN, "caption": text}
        for i, text in enumerate(["a red circle", "a blue square"])
    ]
    write_json(paths["captions"], captions)
    Image.new("RGB", (1, 1), "red").save(paths["images"] / f"COCO_val2014_{TINY:012d}.png")
    runs = {}
    for task, name in (("captions", "explain_captions"), ("vqa", "explain_vqa")):
        out = tmp_path_factory.mktemp(f"mismatched_{task}")
        with one_thread(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            line = script(name).main(arguments({**dataset, "root": root}, task, out))
        runs[task] = {"out": out, "line": line, "warnings": [str(w.message) for w in caught]}
    return runs


def test_a_caption_of_an_image_missing_from_images_is_a_counted_skip(mismatched_runs, captions_run):
    run = mismatched_runs["captions"]
    metrics = json.loads((run["out"] / "metrics.json").read_text())
    unknown = {"count": 1, "ids": [UNKNOWN], "captions": 2}
    assert metrics["bad_data"]["unknown_images"] == unknown
    assert run["line"]["unknown_images"] == 1
    report = (run["out"] / "report.txt").read_text()
    assert (
        "captions of images missing from the captions file's 'images' (skipped): 2, image ids "
        "[999]" in report
    )
    assert any("2 captions name images missing" in w and "999" in w for w in run["warnings"])
    # every other image is explained as in the run without the unknown captions
    results = json.loads((run["out"] / "captions_results.json").read_text())
    reference = json.loads((captions_run[0] / "captions_results.json").read_text())
    assert [r["image_id"] for r in results] == [r["image_id"] for r in reference]
    assert captions_run[1]["unknown_images"] == 0


def test_an_image_whose_size_disagrees_with_its_annotation_is_reported_and_not_scored(
    mismatched_runs,
):
    sizes = {"annotation": [128, 128], "file": [1, 1]}
    for task, run in mismatched_runs.items():
        metrics = json.loads((run["out"] / "metrics.json").read_text())
        assert metrics["bad_data"]["size_mismatch"] == {
            "count": 1, "ids": [TINY], "sizes": {str(TINY): sizes}
        }  # fmt: skip
        assert run["line"]["size_mismatches"] == 1
        report = (run["out"] / "report.txt").read_text()
        assert "images whose size differs from their annotation's" in report
        assert f"  {TINY}: file 1x1, annotation 128x128" in report
        assert any("differs from their annotation's: 1" in w and "1x1 in the file" in w
                   for w in run["warnings"]), task  # fmt: skip
        records = [r for r in items(run["out"]) if r["image_id"] == TINY]
        assert records and all("error" not in r for r in records)  # explained, at 1 x 1
        if task == "captions":
            assert records[0]["size"] == [1, 1] and records[0]["words"]
            assert all(m["gt_boxes"] is None for m in records[0]["mentions"])
        else:
            assert all(r["gt_boxes"] is None for r in records if "answer" in r)


# ----------------------------------------------------------------------------- pieces


def test_score_map_of_a_box_shaped_map_points_into_and_boxes_its_object():
    heat = torch.zeros(64, 64)
    heat[10:20, 30:46] = 1.0  # rows 10..19, columns 30..45 at the model's input resolution
    truth = [[60.0, 20.0, 32.0, 20.0]]  # the same region in a 128 x 128 original
    scored = score_map(heat, (128, 128), truth, RunOptions(pointing_tolerance=0))
    assert scored["box"] == [59.0, 19.0, 34.0, 22.0]  # bilinear upsampling blurs one pixel
    assert scored["iou"] == pytest.approx(640 / 748)
    assert scored["pointing"] and scored["box_hits"] == [1] * len(DEFAULT_THRESHOLDS)
    assert scored["pointing_0px"] and scored["pointing_tolerance"] == 0
    assert score_map(heat, (128, 128), None, RunOptions())["gt_boxes"] is None


def test_score_map_points_with_the_scaled_tolerance_and_reports_0_px_beside_it():
    heat = torch.zeros(128, 128)
    heat[10, 70] = 1.0  # peak centre (70.5, 10.5): 8.5 px right of a box ending at x = 62
    truth = [[30.0, 5.0, 32.0, 20.0]]
    scored = score_map(heat, (128, 128), truth, RunOptions())  # 15/224 * 128 = 8.57 px
    assert scored["pointing"] and not scored["pointing_0px"]
    assert scored["pointing_tolerance"] == pytest.approx(15 / 224 * 128)
    fixed = score_map(heat, (128, 128), truth, RunOptions(pointing_tolerance=8))
    assert not fixed["pointing"] and fixed["pointing_tolerance"] == 8


def test_ground_truth_pairs_a_colour_word_with_the_object_of_that_colour():
    def instance(index: int, category: int, color: str | None) -> CocoInstance:
        extra = {"color": color} if color else {}
        return CocoInstance(index, 1, category, (index, 0.0, 5.0, 5.0), 25.0, extra=extra)

    shapes = {1: [instance(1, 1, "red"), instance(2, 1, "blue"), instance(3, 2, "red")]}
    assert ground_truth_boxes(shapes, 1, 1, "red") == [[1, 0.0, 5.0, 5.0]]
    assert ground_truth_boxes(shapes, 1, 1, None) == [[1, 0.0, 5.0, 5.0], [2, 0.0, 5.0, 5.0]]
    assert ground_truth_boxes(shapes, 1, 2, "blue") == []
    coco = {1: [instance(4, 1, None)]}  # COCO instances have no colour: any one matches
    assert ground_truth_boxes(coco, 1, 1, "red") == [[4, 0.0, 5.0, 5.0]]
    assert ground_truth_boxes(None, 1, 1, "red") is None


def test_caption_metrics_count_words_with_no_such_object_as_word_pointing_misses():
    def mention(category: str, truth: list | None, pointing: bool = False, iou: float = 0.0):
        scored = {"category": category, "category_id": 1, "box": None, "gt_boxes": truth}
        if truth:
            hits = [int(iou >= 0.5)] * len(DEFAULT_THRESHOLDS)
            scored.update(pointing=pointing, iou=iou, box_hits=hits, pointing_0px=False,
                          pointing_tolerance=15.0)  # fmt: skip
        return scored

    records = [
        {"image_id": 1, "caption": "there is a red circle", "words": ["red", "circle"],
         "mentions": [mention("circle", [[0, 0, 5, 5]], True, 0.8)]},
        {"image_id": 2, "caption": "there is a blue square", "words": ["blue", "square"],
         "mentions": [mention("square", [[0, 0, 5, 5]], False, 0.2), mention("square", [])]},
        {"image_id": 3, "error": "ValueError: broken"},
    ]  # fmt: skip
    references = {1: ["there is a red circle"], 2: ["there is a blue square"], 3: ["a star"]}
    options = RunOptions(deletion_steps=0, pointing_tolerance=15.0)
    metrics = caption_metrics(records, references, options, instances=True)
    assert metrics["word_pointing"] == {
        "accuracy": 1 / 3, "hits": 1, "accuracy_0px": 0.0, "hits_0px": 0, "words": 3,
        "unmatched": 1, "tolerance": 15.0, "tolerance_rule": "fixed", "mean_tolerance_px": 15.0,
    }  # fmt: skip
    assert metrics["pointing"]["accuracy"] == 0.5 and metrics["loc_accuracy"]["accuracy"] == 0.5
    assert metrics["pointing_0px"] == {"accuracy": 0.0, "hits": 0, "count": 2}
    assert metrics["per_category"]["square"] == {
        "count": 1, "pointing": 0.0, "pointing_0px": 0.0, "loc_accuracy": 0.0, "unmatched": 1,
    }  # fmt: skip
    assert metrics["bleu4"] == pytest.approx(1.0) and metrics["nltk_bleu"]["bleu4"] == 1.0
    assert metrics["images"] == 3 and metrics["captioned"] == 2


def test_vqa_metrics_score_skipped_and_failed_questions_zero():
    humans = ["red"] * 10
    records = [
        {"question_id": 1, "image_id": 1, "question": "what color is the circle?",
         "human_answers": humans, "answer": "red", "categories": [], "gt_boxes": None},
        {"question_id": 2, "image_id": 1, "question": "xyzzy?", "human_answers": humans,
         "skipped": "no known words"},
        {"question_id": 3, "image_id": 2, "question": "what color is the star?",
         "human_answers": humans, "error": "FileNotFoundError: gone"},
    ]  # fmt: skip
    metrics = vqa_metrics(records, RunOptions(deletion_steps=0), instances=False)
    assert metrics["vqa_accuracy"] == pytest.approx(1 / 3)
    assert metrics["vqa_accuracy_answered"] == 1.0
    assert metrics["answered"] == 1 and metrics["bad_data"]["failed_images"]["questions"] == 1
    assert metrics["loc_accuracy"] is None


def test_the_map_that_holds_the_evidence_beats_both_baselines_on_every_measure():
    image = torch.zeros(1, 8, 8)
    image[0, :2, :2] = 1.0  # a bright corner on black

    def score(images: torch.Tensor) -> torch.Tensor:  # the evidence: the top-left 2x2 corner
        return images[:, 0, :2, :2].mean(dim=(1, 2))

    heat = torch.zeros(8, 8)
    heat[:2, :2] = 1.0
    options = RunOptions(deletion_steps=16, road_fractions=(0.25, 0.75))
    found = faithfulness_scores(image, heat, score, options, seed=0)
    # Deleting the 4 evidence pixels first (1/16 of the image) drops the score to 0 at once;
    # inserting them first brings it to 1 at once. ROAD removes the map's whole tie at a share:
    # most relevant first everything (imputed as the zero input), least relevant first all
    # but the corner (imputed from the corner alone: ones).
    assert found["deletion_auc"]["map"] == pytest.approx(0.5 / 16)
    blurred = float(score(blur_image(image)[None]))
    assert found["insertion_auc"]["map"] == pytest.approx((blurred + 1) / 32 + 15 / 16)
    assert found["road_morf"]["map"] == pytest.approx(-1.0, abs=0.05)
    assert found["road_lerf"]["map"] == pytest.approx(0.0, abs=0.05)
    assert found["map_support"] == 4 / 64
    for key, lower in (("deletion_auc", True), ("insertion_auc", False), ("road_morf", True),
                       ("road_lerf", False)):  # fmt: skip
        for baseline in ("random", "center"):
            mine, theirs = found[key]["map"], found[key][baseline]
            assert (mine < theirs) if lower else (mine > theirs), (key, baseline)
    alone = faithfulness_scores(image, heat, score, replace(options, baselines=False), seed=0)
    assert alone["deletion_auc"] == {"map": found["deletion_auc"]["map"]}
    assert set(alone["road_lerf"]) == {"map"}


@pytest.mark.parametrize(
    "name", ["explain_captions", "explain_vqa", "evaluate_shapes", "bench_dataset"]
)
def test_every_option_of_every_script_is_explained_in_help(name):
    parser = script(name).build_parser()
    assert parser.description
    for action in parser._actions:
        assert action.help and len(action.help) > 10, action.option_strings


def test_evaluate_shapes_ends_with_its_figures_and_both_runs_summaries(dataset, tmp_path, capsys):
    line = script("evaluate_shapes").main(
        ["--root", str(dataset["root"]), "--captioner", str(dataset["models"] / "captioner"),
         "--vqa", str(dataset["models"] / "vqa"), "--out", str(tmp_path), "--limit", "4",
         "--max-length", "4", "--workers", "0", "--no-progress"]
    )  # fmt: skip
    printed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed[-1]) == line
    assert set(line) >= {
        "split", "vqa_accuracy", "bleu4", "meteor", "rouge_l", "cider", "word_pointing",
        "word_pointing_0px", "answer_pointing", "answer_pointing_0px", "captions", "vqa",
    }  # fmt: skip
    captions = json.loads((tmp_path / "captions" / "metrics.json").read_text())
    assert line["bleu4"] == captions["bleu4"] and line["cider"] == captions["cider"]
    assert line["word_pointing_0px"] == captions["word_pointing"]["accuracy_0px"]
    assert captions["word_pointing"]["tolerance_rule"] == "15/224 of the image's shorter side"
    for task in ("captions", "vqa"):
        assert set(line[task]) >= {"coco_ap", "coco_ap50", "corloc", "pointing_0px"}
    assert json.loads((tmp_path / "metrics.json").read_text())["bleu4"] == line["bleu4"]


def test_hugging_face_models_run_through_the_same_scripts(dataset, tmp_path):
    """--hf with tiny random BLIP captioning and ViLT VQA checkpoints saved in the test."""
    hf = save_tiny_checkpoints(tmp_path)
    common = ["--root", str(dataset["root"]), "--limit", "3", "--deletion-steps", "2",
              "--workers", "0", "--no-progress"]  # fmt: skip
    with one_thread():
        captions = script("explain_captions").main(
            [*common, "--hf", str(hf["blip"]), "--out", str(tmp_path / "c"),
             "--max-length", "3"]
        )  # fmt: skip
        vqa = script("explain_vqa").main(
            [*common, "--hf", str(hf["vilt"]), "--out", str(tmp_path / "v")]
        )
    assert captions["images"] == 3 and captions["failed_images"] == 1  # image 3 is missing
    with np.load(tmp_path / "c" / "maps.npz") as maps:
        assert sorted(maps.files) == ["1", "2"]
        assert maps["1"].shape[1:] == (4, 4)  # BLIP's 4x4 patch grid
    results = json.loads((tmp_path / "v" / "vqa_results.json").read_text())
    assert {r["answer"] for r in results} <= set(ANSWERS) and vqa["vqa_accuracy"] is not None
    with np.load(tmp_path / "v" / "maps.npz") as maps:
        assert maps[str(results[0]["question_id"])].shape == (3, 3, 3)  # 48 px / 16 px patches
    with one_thread():  # occlusion needs no ReLU rule: it runs on the transformer
        occluded = script("explain_vqa").main(
            [*common, "--hf", str(hf["vilt"]), "--out", str(tmp_path / "o"),
             "--method", "occlusion", "--window", "16", "--deletion-steps", "0",
             "--road-fractions", "none"]
        )  # fmt: skip
    assert occluded["vqa_accuracy"] == vqa["vqa_accuracy"]  # the same answers
    with np.load(tmp_path / "o" / "maps.npz") as maps:
        assert maps[str(results[0]["question_id"])].shape == (3, 48, 48)  # input pixels
    with pytest.raises(ValueError, match="guided_backprop needs ReLUs .* use a CAM method"):
        script("explain_vqa").main(
            [*common, "--hf", str(hf["vilt"]), "--out", str(tmp_path / "g"),
             "--method", "guided_backprop"]
        )  # fmt: skip
    assert not (tmp_path / "g").exists()
