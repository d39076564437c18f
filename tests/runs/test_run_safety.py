"""Dataset runs never mix up results: fingerprinted resumes, one writer per folder, only
per-item data errors skipped, damaged parts recomputed, no escaping file names, no pickles, no
decompression bombs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from repo_files import script

from mmcam.cli.exit_status import run_command
from mmcam.data.annotations import read_vqa, split_paths
from mmcam.data.files import read_json, write_json
from mmcam.data.shapes import write_shapes
from mmcam.data.training_sets import top_answers
from mmcam.data.vocab import Vocabulary
from mmcam.methods import perturbation
from mmcam.runs import chunks
from mmcam.runs.inputs import read_caption_data
from mmcam.runs.output_folder import FolderLock
from mmcam.runs.outputs import read_map
from mmcam.runs.run import RECORDS_LAYOUT
from mmcam.zoo.vqa_model import VQAConfig, VQANet, save_vqa_model

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
OUTPUTS = ["vqa_results.json", "boxes_results.json", "maps.npz", "items.jsonl", "metrics.json"]


def explain_vqa(arguments: list[str]):
    module = script("explain_vqa")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return module.main(arguments)
    finally:
        torch.set_num_threads(threads)


def save_model(items, folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    words = Vocabulary.build(item.question for item in items)
    answers = top_answers(items, 10)
    config = VQAConfig(len(words), len(answers), [8, 8, 8], dim=16, embed_dim=8, hidden_dim=16)
    save_vqa_model(VQANet(config, words, answers), folder)
    return folder


@pytest.fixture
def data(tmp_path) -> dict:
    """Train and val splits of 3 scenes each (both splits' ids start at 1) and a tiny model."""
    root = tmp_path / "shapes"
    write_shapes(root, "train", 3, seed=1)
    write_shapes(root, "val", 3, seed=2)
    paths = split_paths(root, "val")
    items = read_vqa(paths["questions"], paths["vqa_annotations"])
    return {"root": root, "model": save_model(items, tmp_path / "vqa", seed=0)}


def arguments(data: dict, out: Path, *extra: str) -> list[str]:
    return [
        "--root", str(data["root"]), "--checkpoint", str(data["model"]), "--out", str(out),
        "--chunk-size", "1", "--deletion-steps", "0", "--road-fractions", "none", "--workers", "0",
        "--no-progress",
        "--pointing-tolerance", "0", *extra,
    ]  # fmt: skip


def outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def test_resume_over_another_split_is_refused_and_overwrite_starts_afresh(data, tmp_path):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out, "--split", "train"))
    with pytest.raises(RuntimeError, match="holds a run with other settings") as refused:
        explain_vqa(arguments(data, out, "--split", "val"))
    message = str(refused.value)
    assert "changed" in message and "data.images" in message and "data.questions.sha256" in message
    assert "--overwrite" in str(refused.value)

    explain_vqa(arguments(data, out, "--split", "val", "--overwrite"))
    explain_vqa(arguments(data, tmp_path / "fresh", "--split", "val"))
    assert outputs(out) == outputs(tmp_path / "fresh")


@pytest.mark.parametrize("older", [None, 2])  # before the layout was stamped; before box flags
def test_a_run_written_by_an_older_record_layout_is_refused(data, tmp_path, older):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out))
    fingerprint = json.loads((out / "run.json").read_text())
    fingerprint["records"] = older
    if older is None:
        fingerprint.pop("records")
    (out / "run.json").write_text(json.dumps(fingerprint))
    assert RECORDS_LAYOUT == 3
    with pytest.raises(RuntimeError, match=f"records changed .*records={older}.*records=3"):
        explain_vqa(arguments(data, out))


def test_an_occlusion_run_writes_the_same_bytes_under_any_load_and_stamps_its_chunking(
    data, tmp_path, monkeypatch
):
    """Two runs, one under a clock that makes every chunk look dear and one under a clock that
    slows down as it goes: byte-identical outputs; the chunking is in the fingerprint, so a
    restart with another --sweep-batch is refused instead of mixing chunk sizes."""
    occluded = ("--method", "occlusion", "--window", "32")
    clocks = {"slow": lambda: 5.0, "busier": iter(range(1, 10**7)).__next__}
    for name, seconds in clocks.items():
        clock = [0.0]

        def tick(seconds=seconds, clock=clock):
            clock[0] += seconds()
            return clock[0]

        monkeypatch.setattr(perturbation.time, "perf_counter", tick)
        explain_vqa(arguments(data, tmp_path / name, *occluded))
    assert outputs(tmp_path / "slow") == outputs(tmp_path / "busier")
    stamped = json.loads((tmp_path / "slow" / "run.json").read_text())["options"]
    assert stamped["sweep_batch"] is None
    assert stamped["sweep_chunking"] == perturbation.chunking_policy()
    refused = r"options\.sweep_batch, options\.sweep_chunking changed"
    with pytest.raises(RuntimeError, match=refused):
        explain_vqa(arguments(data, tmp_path / "slow", *occluded, "--sweep-batch", "5"))


def test_a_refused_resume_ends_with_its_message_and_no_traceback_unless_debug(data, tmp_path):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out, "--split", "train"))
    command = [sys.executable, str(ROOT / "scripts" / "explain_vqa.py")]
    command += arguments(data, out, "--split", "val")
    refused = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert refused.returncode == 2 and refused.stdout == ""
    last = refused.stderr.splitlines()[-1]
    assert (
        last.startswith(f"error: {out} holds a run with other settings: ") and "--overwrite" in last
    )
    assert "Traceback" not in refused.stderr

    shown = subprocess.run(
        [*command, "--debug"], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert shown.returncode == 1
    assert "Traceback (most recent call last)" in shown.stderr
    assert f"RefusedRun: {out} holds a run with other settings" in shown.stderr


def test_a_malformed_annotation_file_is_refused_in_one_line(data, tmp_path, capsys):
    questions = split_paths(data["root"], "val")["questions"]
    write_json(questions, {"questions": [{"image_id": 1, "question": "is there a circle?"}]})
    assert run_command(script("explain_vqa").main, arguments(data, tmp_path / "out")) == 2
    assert capsys.readouterr().err == (
        f"error: {questions}: a question lacks ['question_id']; found keys ['image_id', "
        "'question']\n"
    )


def test_a_fault_is_no_refusal_and_keeps_its_traceback(data, tmp_path, monkeypatch):
    def broken_preprocess(image):
        raise TypeError("preprocess got a PIL image it cannot handle")

    monkeypatch.setattr("mmcam.zoo.vqa_model.preprocess", broken_preprocess)
    with pytest.raises(TypeError, match="cannot handle"):  # Python prints it with its traceback
        run_command(script("explain_vqa").main, arguments(data, tmp_path / "out"))


def test_a_checkpoint_retrained_in_place_is_refused(data, tmp_path):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out))
    paths = split_paths(data["root"], "val")
    save_model(read_vqa(paths["questions"], paths["vqa_annotations"]), data["model"], seed=1)
    with pytest.raises(RuntimeError, match=r"model\.checkpoint\.model\.pt changed"):
        explain_vqa(arguments(data, out))


def test_regenerated_annotations_are_refused(data, tmp_path):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out))
    write_shapes(data["root"], "val", 3, seed=3)
    with pytest.raises(RuntimeError, match=r"data\.questions\.sha256"):
        explain_vqa(arguments(data, out))


def test_a_second_process_on_the_same_folder_refuses(data, tmp_path):
    out = tmp_path / "out"
    other = FolderLock(out)  # a second open file description: flock treats it as another holder
    other.acquire()
    try:
        with pytest.raises(RuntimeError, match="is being written by another run"):
            explain_vqa(arguments(data, out))
        assert not (out / "parts").exists()
    finally:
        other.release()
    explain_vqa(arguments(data, out))  # the lock is free again
    assert (out / "vqa_results.json").exists()


def test_a_forked_worker_outliving_a_killed_run_does_not_keep_the_folder_locked(tmp_path):
    # A DataLoader worker shares the lock's open file; the run's SIGKILL does not reach it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from pathlib import Path\n"
            "from mmcam.runs.output_folder import FolderLock\n"
            "lock = FolderLock(Path(sys.argv[1]))\n"
            "lock.acquire()\n"
            "if os.fork() == 0:\n"  # the child lets go of the lock as it starts, then says so
            "    os.write(1, b'forked\\n')\n"
            "    signal.pause()\n"  # alive until the test kills it, however long that takes
            "    os._exit(0)\n"
            "os.write(1, b'locked\\n')\n"
            "signal.pause()\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        said = {holder.stdout.readline().strip() for _ in range(2)}  # in either order
        assert said == {"locked", "forked"}
        holder.kill()  # the parent only: its forked child lives on
        holder.wait()
        lock = FolderLock(tmp_path)
        lock.acquire()  # no "being written by another run"
        lock.release()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)


def test_only_data_errors_are_skipped_and_a_fault_stops_the_run_keeping_finished_chunks(
    data, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    original = chunks._ChunkDataset.__getitem__

    def fault_in_second_chunk(self, position):
        if self.indices[position] == 1:
            raise TypeError("a bug in the preprocessing")
        return original(self, position)

    monkeypatch.setattr(chunks._ChunkDataset, "__getitem__", fault_in_second_chunk)
    with pytest.raises(TypeError, match="a bug in the preprocessing"):
        explain_vqa(arguments(data, out))
    assert [p.name for p in sorted((out / "parts").glob("chunk-*.json"))] == ["chunk-000000.json"]

    monkeypatch.setattr(chunks._ChunkDataset, "__getitem__", original)
    loader_fault = tmp_path / "loader"

    def broken_preprocess(image):
        raise TypeError("preprocess got a PIL image it cannot handle")

    monkeypatch.setattr("mmcam.zoo.vqa_model.preprocess", broken_preprocess)
    with pytest.raises(TypeError, match="cannot handle"):  # not recorded as a bad image
        explain_vqa(arguments(data, loader_fault))


def test_a_run_where_every_image_failed_raises(data, tmp_path):
    for image in split_paths(data["root"], "val")["images"].iterdir():
        image.write_text("not an image")
    with pytest.raises(RuntimeError, match="every one of the 3 images failed to load"):
        explain_vqa(arguments(data, tmp_path / "out"))


@pytest.mark.parametrize("damaged", ["chunk-000001.json", "chunk-000001.npz"])
def test_a_truncated_part_is_recomputed_to_identical_outputs(data, tmp_path, damaged):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out))
    reference = outputs(out)
    part = out / "parts" / damaged
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    for name in OUTPUTS:
        (out / name).unlink()
    with pytest.warns(UserWarning, match="chunk 1 .* is damaged"):
        explain_vqa(arguments(data, out))
    assert outputs(out) == reference


def test_a_full_disk_stops_with_a_clear_error_and_the_rerun_is_identical(
    data, tmp_path, monkeypatch
):
    explain_vqa(arguments(data, tmp_path / "reference"))
    out = tmp_path / "out"
    savez = np.savez_compressed
    written = []

    def disk_fills_on_the_second_chunk(file, **arrays):
        written.append(1)
        if len(written) == 2:
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        savez(file, **arrays)

    monkeypatch.setattr(chunks.np, "savez_compressed", disk_fills_on_the_second_chunk)
    with pytest.raises(OSError, match="no space left on the device while writing chunk 1"):
        explain_vqa(arguments(data, out))
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        "chunk-000000.json",
        "chunk-000000.npz",
        "layout.json",
    ]
    monkeypatch.setattr(chunks.np, "savez_compressed", savez)
    explain_vqa(arguments(data, out))
    assert outputs(out) == outputs(tmp_path / "reference")


@pytest.mark.parametrize("name", ["../outside.png", "/etc/hostname", "sub/../../outside.png"])
def test_a_file_name_that_escapes_the_image_folder_is_refused(data, name):
    paths = split_paths(data["root"], "val")
    captions = read_json(paths["captions"])
    captions["images"][1]["file_name"] = name
    write_json(paths["captions"], captions)
    with pytest.raises(ValueError, match="escapes the image folder"):
        read_caption_data(paths["captions"], paths["images"])


def test_maps_holding_pickled_objects_are_refused(tmp_path):
    np.savez(tmp_path / "maps.npz", **{"7": np.array([{"code": "runs"}], dtype=object)})
    with pytest.raises(ValueError, match="mmcam never loads pickles"):
        read_map(tmp_path, 7)


def test_an_image_over_the_decompression_bomb_limit_is_a_counted_skip(data, tmp_path, monkeypatch):
    folder = split_paths(data["root"], "val")["images"]
    big = folder / "COCO_val2014_000000000002.png"
    Image.open(big).resize((250, 250)).save(big)  # 62,500 pixels: over the limit, under twice it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 200)
    explain_vqa(arguments(data, tmp_path / "out"))
    bad = json.loads((tmp_path / "out" / "metrics.json").read_text())["bad_data"]
    assert bad["failed_images"]["ids"] == [2]
    assert "decompression-bomb limit" in bad["failed_images"]["errors"]["2"]


def test_run_files_are_left_alone_by_overwrite_outside_the_run(data, tmp_path):
    out = tmp_path / "out"
    explain_vqa(arguments(data, out, "--split", "train"))
    (out / "notes.txt").write_text("mine")
    explain_vqa(arguments(data, out, "--overwrite"))
    assert (out / "notes.txt").read_text() == "mine"
    shutil.rmtree(out)
