"""The batch runner: atomic writes, kill -9 and resume, torchrun sharding, bad items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pause_after_chunks import kill_after_chunks

from mmcam.data.files import write_atomically, write_json
from mmcam.runs.chunks import ChunkedRun, Shard

JOB = Path(__file__).with_name("runner_job.py")
BIN = Path(sys.executable).parent


def run_job(out: Path) -> None:
    subprocess.run([sys.executable, str(JOB), str(out)], check=True, timeout=120)


def outputs(out: Path) -> tuple[bytes, list[np.ndarray]]:
    run = ChunkedRun(out, list(range(50)), chunk_size=4)
    return (out / "results.json").read_bytes(), [
        run.arrays(i)["values"] for i in range(run.chunk_count)
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_job(out)
    return out


def test_uninterrupted_run_reports_the_bad_item_and_keeps_the_rest(reference):
    records = json.loads((reference / "results.json").read_text())
    assert [r["id"] for r in records] == list(range(50))
    assert records[13] == {"id": 13, "error": "corrupt item"}
    assert records[12] == {"id": 12, "square": 144}


def test_run_killed_with_sigkill_resumes_to_identical_outputs(reference, tmp_path):
    # The job stops for good after its third chunk and says so; it is killed there, so the
    # test sees the same state however busy the machine is.
    kill_after_chunks(3, [str(JOB), str(tmp_path)])
    parts = tmp_path / "parts"
    assert len(list(parts.glob("chunk-*.json"))) == 3
    assert not (tmp_path / "results.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.json")}
    run_job(tmp_path)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.json")}
    assert all(after[name] == stamp for name, stamp in before.items())  # nothing redone
    ours, theirs = outputs(tmp_path), outputs(reference)
    assert ours[0] == theirs[0]
    for a, b in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.rglob("*.tmp"))


def test_two_torchrun_processes_write_what_one_process_writes(reference, tmp_path):
    subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", str(JOB), str(tmp_path)],
        check=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    ours, theirs = outputs(tmp_path), outputs(reference)
    assert ours[0] == theirs[0]
    for a, b in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_shards_split_chunks_by_rank(tmp_path):
    ids = list(range(10))
    ranks = [ChunkedRun(tmp_path, ids, 3, Shard(r, 2)).pending() for r in range(2)]
    assert ranks == [[0, 2], [1, 3]]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "metrics.json", {"old": 1})

    def broken(file):
        file.write('{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_resuming_with_a_different_layout_is_refused(tmp_path):
    ChunkedRun(tmp_path, list(range(10)), 4)
    with pytest.raises(RuntimeError, match="holds parts of a different run"):
        ChunkedRun(tmp_path, list(range(10)), 5)
