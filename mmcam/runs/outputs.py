"""A run's output files written as streams (a JSON list, an `.npz`), and maps read back."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcam.core.explanation import Explanation
from mmcam.data.files import numeric_npz, write_atomically

__all__ = ["read_map"]


def write_json_list(path: str | Path, items: Iterable[Any]) -> Path:
    """A JSON list written item by item (never all in memory), atomically."""

    def write(file: Any) -> None:
        file.write("[")
        for position, item in enumerate(items):
            file.write(("," if position else "") + "\n " + json.dumps(item))
        file.write("\n]\n")

    return write_atomically(path, write)


def write_npz_stream(path: str | Path, arrays: Iterable[tuple[str, np.ndarray]]) -> Path:
    """An `.npz` (what `np.savez_compressed` writes, readable by `np.load`) written one array at
    a time, atomically, with fixed timestamps so equal arrays give equal bytes."""

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
            for key, array in arrays:
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array))

    return write_atomically(path, write, "wb")


def read_map(out: str | Path, key: int, size: Sequence[int] | None = None) -> Explanation:
    """The maps stored for image (captions) or question (VQA) `key` in a finished run, as an
    `Explanation` upsampled to `size` (the image's (height, width); raw maps when None)."""
    with numeric_npz(Path(out) / "maps.npz") as stored:
        raw = torch.from_numpy(stored[str(key)]).float()
    return Explanation.from_raw(raw, torch.zeros(raw.shape[:-2]), size, "stored")
