"""A plain `pip install` of mmcam (not editable, used from another folder) carries everything
it reads: the bundled checkpoints, the box settings table and the samples load from the
installed package, with the numbers of the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USE = """
import json, mmcam
from mmcam.boxes.settings import default_method
from mmcam.zoo import bundled
captioner = bundled("captioner")
vqa = bundled("vqa")
print(json.dumps({
    "package": mmcam.__file__,
    "default": default_method().method,
    "captioner": type(captioner).__name__,
    "answers": len(vqa.answers),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """mmcam built as a wheel from a copy of the checkout and installed into a folder of its
    own (its dependencies come from the test's environment)."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mmcam", source / "mmcam", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "wheel"),
         str(source)], check=True, capture_output=True,
    )  # fmt: skip
    wheel = next((work / "wheel").glob("mmcam-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(work / "site"), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    return work


def test_the_installed_package_loads_its_bundled_models_and_settings(installed):
    elsewhere = installed / "elsewhere"
    elsewhere.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(installed / "site")}
    done = subprocess.run(
        [sys.executable, "-c", USE], cwd=elsewhere, capture_output=True, text=True,
        env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(installed / "site"))
    table = json.loads((ROOT / "mmcam" / "bundled" / "box_settings.json").read_text())
    assert found["default"] == table["default"]["method"] != "gradcam"
    assert found["captioner"] == "Captioner"
    answers = json.loads((ROOT / "mmcam" / "bundled" / "vqa" / "answers.json").read_text())
    assert found["answers"] == len(answers)


def test_the_installed_mmcam_command_runs_from_another_folder(installed):
    command = installed / "site" / "bin" / "mmcam"  # the console script pip wrote
    assert command.is_file()
    elsewhere = installed / "elsewhere-command"
    elsewhere.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(installed / "site")}
    done = subprocess.run(
        [str(command), "explain-captions", "--help"], cwd=elsewhere, capture_output=True,
        text=True, env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mmcam explain-captions")
    assert "captions_results.json" in done.stdout
