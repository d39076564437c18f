"""Resumable, shardable runs over a dataset: fixed chunks, each written atomically once.

The items are cut into chunks of a fixed size, whatever the number of processes. Each chunk's
records (JSON) and arrays (a compressed `.npz`) are written atomically to `parts/` when the
chunk is done, so a run killed at any moment (even `kill -9`) loses at most the chunks in
flight, and a restart with the same command skips the chunks already on disk. Under torchrun,
rank r of W takes chunks r, r + W, ...; `merged_records` reads the parts back in chunk order,
so a one-process run and a W-process run write identical outputs.

A part is trusted only when it is whole: the records file holds the SHA-256 of the arrays file
written before it, so a part truncated by a crash (or filled in by another program) is found
when the run resumes, reported, and its chunk recomputed. A disk that fills up while a chunk is
written stops the run with an error saying so; the rerun recomputes that chunk.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mmcam.data.files import (
    BadData,
    RefusedInput,
    RefusedRun,
    file_digest,
    numeric_npz,
    write_atomically,
    write_json,
)


@dataclass(frozen=True)
class Shard:
    """This process's place in a run: rank r of `world` processes."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_process_group() -> Shard:
    """The shard torchrun assigned (gloo on CPU, nccl on GPUs), or rank 0 of 1 outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def wait_for_all_ranks() -> None:
    """A barrier across torchrun's processes; nothing outside torchrun."""
    if dist.is_initialized():
        dist.barrier()


class ChunkedRun:
    """The chunks of `item_ids` under `out_dir/parts`, which are done and which are this
    shard's to do."""

    def __init__(
        self, out_dir: str | Path, item_ids: Sequence, chunk_size: int, shard: Shard = Shard()
    ) -> None:
        if chunk_size < 1:
            raise RefusedInput(f"chunk_size must be >= 1, got {chunk_size}")
        self.parts = Path(out_dir) / "parts"
        self.item_ids = list(item_ids)
        self.chunk_size = chunk_size
        self.shard = shard
        self.chunk_count = -(-len(self.item_ids) // chunk_size)
        self._check_layout()

    def _check_layout(self) -> None:
        """Refuse to resume over parts cut from different items or a different chunk size."""
        layout = {
            "items": len(self.item_ids),
            "chunk_size": self.chunk_size,
            "first": repr(self.item_ids[:1]),
            "last": repr(self.item_ids[-1:]),
        }
        stamp = self.parts / "layout.json"
        if stamp.exists():
            found = json.loads(stamp.read_text())
            if found != layout:
                raise RefusedRun(
                    f"{self.parts} holds parts of a different run ({found}); this run is "
                    f"{layout}. Use another output folder or delete it."
                )
        elif self.shard.is_main:
            write_json(stamp, layout)

    def chunk_items(self, index: int) -> list:
        return self.item_ids[index * self.chunk_size : (index + 1) * self.chunk_size]

    def _record_path(self, index: int) -> Path:
        return self.parts / f"chunk-{index:06d}.json"

    def _array_path(self, index: int) -> Path:
        return self.parts / f"chunk-{index:06d}.npz"

    def is_done(self, index: int) -> bool:
        return self._record_path(index).exists()

    def pending(self) -> list[int]:
        """This shard's chunks that have no whole part on disk yet, in order. A damaged part
        (truncated records, arrays whose hash differs from the one recorded) is reported,
        removed and counted as pending."""
        mine = range(self.shard.rank, self.chunk_count, self.shard.world)
        return [index for index in mine if not (self.is_done(index) and self._is_whole(index))]

    def _is_whole(self, index: int) -> bool:
        problem = None
        try:
            part = self._read_part(index)
        except (ValueError, KeyError, TypeError) as error:
            problem = f"its records are unreadable ({error})"
        else:
            digest = part["arrays_sha256"]
            path = self._array_path(index)
            if digest is not None and (not path.exists() or file_digest(path) != digest):
                problem = f"{path.name} is missing or differs from the hash its records hold"
        if problem is None:
            return True
        warnings.warn(
            f"chunk {index} in {self.parts} is damaged ({problem}), probably by a crash while "
            "it was written; recomputing it",
            stacklevel=2,
        )
        self._record_path(index).unlink(missing_ok=True)
        self._array_path(index).unlink(missing_ok=True)
        return False

    def _read_part(self, index: int) -> dict:
        part = json.loads(self._record_path(index).read_text())
        if not isinstance(part, dict) or not isinstance(part["records"], list):
            raise ValueError("not a part written by this version of mmcam")
        return part

    def write_chunk(
        self, index: int, records: list[dict], arrays: dict[str, np.ndarray] | None = None
    ) -> None:
        """Store one finished chunk: arrays first, then the records (with the arrays' hash)
        that mark it done. A full disk raises an error saying so; nothing half-written stays."""
        try:
            digest = None
            if arrays:
                path = write_atomically(
                    self._array_path(index),
                    lambda file: np.savez_compressed(file, **arrays),
                    "wb",
                )
                digest = file_digest(path)
            write_json(self._record_path(index), {"records": records, "arrays_sha256": digest})
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise OSError(
                error.errno,
                f"no space left on the device while writing chunk {index} to {self.parts} "
                f"({error.strerror}). The finished chunks are kept: free some space and run "
                "the same command again, which recomputes this chunk",
            ) from error

    def merged_records(self) -> Iterator[dict]:
        """Every chunk's records in chunk order; raises if a chunk is missing."""
        for index in range(self.chunk_count):
            if not self.is_done(index):
                raise RuntimeError(f"chunk {index} of {self.chunk_count} is not done yet")
            yield from self._read_part(index)["records"]

    def arrays(self, index: int) -> dict[str, np.ndarray]:
        """The arrays stored with chunk `index` (empty when it stored none); never unpickles."""
        path = self._array_path(index)
        if not path.exists():
            return {}
        with numeric_npz(path) as stored:
            return {key: stored[key] for key in stored.files}


@dataclass
class LoadedChunk:
    """One chunk as loaded by a worker: the items that loaded, and those that did not."""

    index: int
    items: list[tuple[Any, Any]]  # (item id, loaded value)
    failures: list[dict]  # {"id": item id, "error": what was wrong}


class _ChunkDataset(torch.utils.data.Dataset):
    def __init__(self, run: ChunkedRun, indices: list[int], load: Callable[[Any], Any]) -> None:
        self.run, self.indices, self.load = run, indices, load

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> LoadedChunk:
        index = self.indices[position]
        chunk = LoadedChunk(index, [], [])
        for item_id in self.run.chunk_items(index):
            try:
                chunk.items.append((item_id, self.load(item_id)))
            except BadData as error:  # a bad item is reported and skipped; any other error
                chunk.failures.append({"id": item_id, "error": str(error)})  # stops the run
        return chunk


def _as_is(chunk: LoadedChunk) -> LoadedChunk:
    return chunk


def load_chunks(
    run: ChunkedRun, load: Callable[[Any], Any], workers: int = 0
) -> Iterator[LoadedChunk]:
    """This shard's pending chunks, loaded by `workers` DataLoader processes, in order."""
    dataset = _ChunkDataset(run, run.pending(), load)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=_as_is
    )
    yield from loader
