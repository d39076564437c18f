"""The output folder a dataset run owns: its fingerprint, its lock, and starting afresh.

A run resumes only the run its folder holds. `run.json` keeps the run's fingerprint: the task,
the model (each checkpoint file's content hash, or the hub name and revision), the explained
layer, every option that changes results, the data (image folder, each annotation file's path
and content hash) and the ordered list of item ids (as a hash). A restart whose fingerprint
differs is refused, naming what changed; `overwrite` removes the old run's files first.

One process writes a folder at a time: the main process holds an exclusive `flock` on
`<out>/.lock` for the whole run (the kernel releases it if the process dies, so a crash leaves
no stale lock). torchrun's other ranks belong to the same run and take no lock. A forked child
(a DataLoader worker) lets go of its copy of the lock at once, so a worker that outlives a killed
run cannot keep the folder locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

import torch.distributed as dist

from mmcam.data.files import RefusedRun, write_json

# What a finished or partial run leaves in its folder (removed by `overwrite`).
RUN_FILES = (
    "run.json",
    "captions_results.json",
    "vqa_results.json",
    "boxes_results.json",
    "maps.npz",
    "items.jsonl",
    "metrics.json",
    "report.txt",
    "timing.json",
)
RUN_FOLDERS = ("parts", "figures")


def ids_digest(ids: list) -> dict:
    """The ordered item ids as their count and a SHA-256 of their JSON."""
    return {"count": len(ids), "sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest()}


def changes(found: dict, wanted: dict, prefix: str = "") -> list[str]:
    """The dotted names of the entries that differ between two fingerprints."""
    names = []
    for key in sorted(set(found) | set(wanted), key=str):
        old, new = found.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            names += changes(old, new, f"{prefix}{key}.")
        elif old != new:
            names.append(f"{prefix}{key}")
    return names


def check_fingerprint(out: Path, fingerprint: dict) -> None:
    """Refuse to resume `out` when its `run.json` holds another run; write it when new."""
    path = out / "run.json"
    if path.exists():
        found = json.loads(path.read_text())
        changed = changes(found, fingerprint)
        if changed:
            raise RefusedRun(
                f"{out} holds a run with other settings: {', '.join(changed)} changed (it holds "
                f"{_values(found, changed)}; this run has {_values(fingerprint, changed)}). "
                "Resume with the same data, model and options, start afresh with --overwrite, "
                "or choose another output folder."
            )
    else:
        write_json(path, fingerprint)


def _values(fingerprint: dict, names: list[str]) -> str:
    shown = []
    for name in names:
        value: Any = fingerprint
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        shown.append(f"{name}={value!r}" if len(repr(value)) < 80 else f"{name}=...")
    return ", ".join(shown)


def remove_run(out: Path) -> None:
    """Remove what a run wrote to `out` (and nothing else the folder holds)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


_HELD_LOCKS: set[int] = set()  # file descriptors of the locks this process holds


def _let_go_of_locks_in_child() -> None:
    """In a forked child: point each held lock's descriptor at /dev/null. `flock` belongs to the
    open file, which a fork shares, so the lock would otherwise live as long as the child."""
    if not _HELD_LOCKS:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for descriptor in _HELD_LOCKS:
        os.dup2(devnull, descriptor)
    os.close(devnull)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_let_go_of_locks_in_child)


class FolderLock:
    """An exclusive, non-blocking `flock` on `<out>/.lock`; a second process refuses."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise RefusedRun(
                f"{self.path.parent} is being written by another run ({holder}); wait for it "
                "to finish or choose another output folder"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        self._file = file
        _HELD_LOCKS.add(file.fileno())

    def release(self) -> None:
        if self._file is not None:
            _HELD_LOCKS.discard(self._file.fileno())
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def claim(out: Path, fingerprint: dict, overwrite: bool, is_main: bool) -> FolderLock | None:
    """On the main process: lock `out`, start afresh when `overwrite`, check or write the
    fingerprint. Under torchrun every rank learns the outcome, so all raise together (the main
    process its own error, the others a `RefusedRun` with its message)."""
    lock, problem, error_here = None, None, None
    if is_main:
        try:
            lock = FolderLock(out)
            lock.acquire()
            if overwrite:
                remove_run(out)
            check_fingerprint(out, fingerprint)
        except RuntimeError as error:
            if lock is not None:
                lock.release()
            lock, problem, error_here = None, str(error), error
    if dist.is_initialized():
        shared = [problem]
        dist.broadcast_object_list(shared, src=0)
        problem = shared[0]
    if error_here is not None:
        raise error_here
    if problem is not None:
        raise RefusedRun(problem)
    return lock
