"""The repository's scripts and demo as modules, imported from their paths (scripts/ and demos/
are folders of programs, not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def module_from_path(path: Path, name: str) -> ModuleType:
    """The Python file at `path`, imported as a module called `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(name: str) -> ModuleType:
    """`scripts/<name>.py` as a module."""
    return module_from_path(ROOT / "scripts" / f"{name}.py", name)
