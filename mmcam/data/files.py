"""JSON files read with errors that name them, and every output written atomically (a temporary
file beside it, then a rename), so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
        raise FileNotFoundError(f"{path} does not exist; expected a COCO / VQA v2 JSON file")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
