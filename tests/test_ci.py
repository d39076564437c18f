"""`.ci/run` fails when `make test` changes a tracked file or leaves a new one in the tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parents[1] / ".ci" / "run"


def clone_with_test_target(folder: Path, recipe: str) -> Path:
    """A git repository holding .ci/run and a Makefile whose `test` target runs `recipe`."""
    (folder / ".ci").mkdir(parents=True)
    shutil.copy(CI, folder / ".ci" / "run")
    (folder / "Makefile").write_text(f"test:\n\t{recipe}\n")
    (folder / "tracked.txt").write_text("as committed\n")
    (folder / ".gitignore").write_text(".venv/\n")
    git = ["git", "-C", str(folder), "-c", "user.name=ci", "-c", "user.email=ci@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], check=True)
    return folder


@pytest.mark.parametrize(
    ("recipe", "passes"),
    [
        ("mkdir -p .venv && touch .venv/ignored", True),
        ("echo rewritten > tracked.txt", False),
        ("touch left-behind.png", False),
    ],
)
def test_ci_fails_when_make_test_changes_the_tree(tmp_path, recipe, passes):
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs git and make")
    clone = clone_with_test_target(tmp_path / "clone", recipe)
    result = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True)
    assert (result.returncode == 0) is passes, result.stderr
    if not passes:
        assert "make test changed or left files in the tree:" in result.stderr
