"""Every Python example in the README, the front page, runs as pasted (those that need the network
are marked)."""

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
    assert len(OFFLINE) >= 1


@pytest.mark.parametrize("block", OFFLINE, ids=[f"block{i}" for i in range(len(OFFLINE))])
def test_readme_example_runs_as_pasted(block, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # every example prints what it made



VERDICTS = {True: "passes", False: "fails", None: "not checked"}


def test_the_method_table_lists_every_registry_method_with_its_sanity_verdict():
    from mmcam.methods import registry

    section = README.read_text().split("## Methods", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| [^|]+ \| `([^`]+)` \|[^|]+\|[^|]+\| ([^|]+) \|$", section, re.M)
    table = {method_id: verdict for method_id, verdict in rows}
    assert sorted(table) == sorted(registry.ids())
    wrong = {
        method_id: verdict
        for method_id, verdict in table.items()
        if not verdict.startswith(VERDICTS[registry.get(method_id).sanity])
    }
    assert wrong == {}
