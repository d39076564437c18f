"""Every Python example in the README runs as pasted (those that need the network are marked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
OFFLINE = [block for block in BLOCKS if not block.startswith("# needs network")]


def test_readme_has_examples():
    assert len(OFFLINE) >= 3


@pytest.mark.parametrize("block", OFFLINE, ids=[f"block{i}" for i in range(len(OFFLINE))])
def test_readme_example_runs_as_pasted(block, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # every example prints what it made


def named_tests(readme: str) -> list[tuple[str, str | None]]:
    """(file, test) for each `tests/...py::name` or `::name` (of the file named before it) in
    the README's "## Guarantees" table; (file, None) for a file named alone."""
    table = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    found, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", table):
        current = path or current
        if path or name:
            found.append((current, name or None))
    return found


def test_every_test_the_guarantees_table_names_exists():
    root = README.parent
    named = named_tests(README.read_text())
    assert len(named) > 40
    missing = [
        f"{path}::{name}" if name else path
        for path, name in named
        if not (root / path).is_file()
        or (name and not re.search(rf"^def {name}\(", (root / path).read_text(), re.M))
    ]
    assert missing == []
