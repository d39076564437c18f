"""JSON files read with errors that name them, and every output written atomically (a temporary
file or folder beside it, then a rename), so a reader never sees half a file or folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class BadData(ValueError):
    """One item of a dataset cannot be used (a missing, unreadable, truncated or non-image file,
    an image over the decompression-bomb limit): a dataset run records it and goes on. Any
    other error is a fault and stops the run."""


class Refusal(Exception):
    """What the user gave cannot be used as given (an annotation file that is not what it
    claims, an output folder holding another run, a missing file, an option the model cannot
    take); the message says what was wrong and what to do. The dataset scripts print a refusal's
    message alone and exit 2 (`--debug` shows its traceback); any other exception is a fault
    and keeps its traceback. Raised as one of the subclasses below, each also the built-in
    error a caller would catch."""


class RefusedInput(Refusal, ValueError):
    """An input file or option that cannot be used."""


class RefusedRun(Refusal, RuntimeError):
    """A run that must not go on: its output folder holds another run or is being written, or
    every image failed to load."""


class MissingInput(Refusal, FileNotFoundError):
    """A file the user named (an annotation file, a part of a checkpoint) does not exist."""


def file_in_folder(folder: str | Path, name: str, what: str = "file_name") -> Path:
    """`folder / name`, refusing a `name` that would leave `folder` (an absolute path, a `..`
    part): an annotation file decides which files a run reads, never files elsewhere."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or relative.drive:
        raise RefusedInput(
            f"{what} {name!r} escapes the image folder {folder}: give a path inside it "
            "(no absolute path, no '..')"
        )
    return Path(folder) / relative


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Write `path` through `write(file)` into a temporary file beside it, then rename it into
    place: readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def numeric_npz(path: str | Path) -> Iterator[Any]:
    """An `.npz` file opened with `np.load`, refusing object arrays: restoring them would
    unpickle, and unpickling runs whatever code the file holds."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            yield stored
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
        raise RefusedInput(
            f"{path} holds an object array, which only a pickle can restore; mmcam never loads "
            "pickles (maps files hold numeric arrays only)"
        ) from error


def write_folder_atomically(folder: str | Path, fill: Callable[[Path], None]) -> Path:
    """Fill a temporary folder beside `folder` through `fill(temporary)`, then rename it into
    place (an existing `folder` is moved aside first and removed after): readers see the old
    folder or the whole new one, never a part; a failure leaves the old one untouched."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is not
    old = temporary.with_suffix(".old")
    try:
        fill(temporary)
        if folder.exists():
            os.rename(folder, old)
        os.rename(temporary, folder)
    except BaseException:
        if old.exists() and not folder.exists():
            os.rename(old, folder)  # put the previous folder back
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return folder


def write_json(path: str | Path, value: Any, *, indent: int | None = 1) -> Path:
    """`value` as JSON at `path`, atomically: indented by `indent`, or compact when None."""
    separators = None if indent else (",", ":")
    return write_atomically(
        path, lambda file: json.dump(value, file, indent=indent, separators=separators)
    )


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path} does not exist; expected a COCO / VQA v2 JSON file")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise RefusedInput(f"{path} is not valid JSON: {error}") from error
