"""A plain `pip install` of mmcam (a built wheel, not editable, used from another folder) carries
everything it reads, installs the `mmcam` command, and changes nothing on import; a core-only
install computes maps and names the extra a feature needs.

The wheel goes into fresh virtual environments that reuse this environment's libraries through a
`.pth` line (never its mmcam): all of them for the full install, only the core dependencies'
distributions (resolved from mmcam's own metadata) for the core-only one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USE = """
import json, matplotlib
before = matplotlib.get_backend()
import mmcam
from mmcam.boxes.settings import default_method
from mmcam.zoo import bundled
print(json.dumps({
    "package": mmcam.__file__,
    "backend": [before, matplotlib.get_backend()],
    "default": default_method().method,
    "captioner": type(bundled("captioner")).__name__,
    "answers": len(bundled("vqa").answers),
}))
"""
CORE = """
import sys, torch, torchvision, mmcam
model = torchvision.models.resnet18().eval()
with mmcam.Tap(model, "layer4") as tap:
    logits = model(torch.rand(1, 3, 64, 64))
print(tuple(mmcam.grad_cam(tap, logits[:, 0]).raw.shape))
from mmcam.cli import main
main(["demo"])
"""


def distribution_closure(requirements: list[str]) -> set[str]:
    """The installed distributions `requirements` need, transitively (markers with an extra
    are left out: only what a plain install pulls in)."""
    names, seen = [re.split(r"[ ;<>=!\[~(]", r, maxsplit=1)[0] for r in requirements], set()
    while names:
        name = names.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-only dependency that is not installed here
        seen.add(name)
        for requirement in dist.requires or []:
            windows_only = 'platform_system == "Windows"' in requirement
            if "extra ==" not in requirement and not windows_only:
                names.append(re.split(r"[ ;<>=!\[~(]", requirement, maxsplit=1)[0])
    return seen


def core_site(folder: Path) -> Path:
    """A folder with links to the files of the core dependencies' distributions only."""
    folder.mkdir()
    core = [r for r in metadata.requires("mmcam") if "extra ==" not in r]
    for name in distribution_closure(core):
        dist = metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not top.endswith(".pth") and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def fresh_venv(folder: Path, wheel: Path, site: Path) -> Path:
    """A virtual environment at `folder` with the wheel installed and `site` on its path."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "reused.pth").write_text(f"{site}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--python", str(python), "install", "--no-deps",
         str(wheel)], check=True, capture_output=True,
    )  # fmt: skip
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """mmcam built as a wheel from a copy of the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mmcam", source / "mmcam", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(work), str(source)], check=True, capture_output=True,
    )  # fmt: skip
    return next(work.glob("mmcam-*.whl"))


def run_in(python: Path, arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python), *arguments], cwd=cwd, capture_output=True, text=True,
        env={**environment, "MPLBACKEND": "pdf"},
    )  # fmt: skip


def test_the_installed_package_loads_its_bundled_files_and_runs_the_front_page_example(
    wheel, tmp_path
):
    python = fresh_venv(tmp_path / "venv", wheel, Path(sysconfig.get_paths()["purelib"]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_in(python, ["-c", USE], elsewhere)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(tmp_path / "venv"))
    assert found["backend"] == ["pdf", "pdf"]  # import mmcam left the backend alone
    table = json.loads((ROOT / "mmcam" / "bundled" / "box_settings.json").read_text())
    assert found["default"] == table["default"]["method"] != "gradcam"
    assert found["captioner"] == "Captioner"
    answers = json.loads((ROOT / "mmcam" / "bundled" / "vqa" / "answers.json").read_text())
    assert found["answers"] == len(answers)

    example = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    done = run_in(python, ["-c", example], elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()

    done = run_in(tmp_path / "venv" / "bin" / "mmcam", ["explain-captions", "--help"], elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mmcam explain-captions")
    assert "captions_results.json" in done.stdout


def test_a_core_only_install_maps_and_names_the_extra_the_demo_needs(wheel, tmp_path):
    site = core_site(tmp_path / "core-site")
    assert not (site / "gradio").exists() and (site / "torch").exists()
    python = fresh_venv(tmp_path / "venv", wheel, site)
    done = run_in(python, ["-c", CORE], tmp_path)
    assert "(1, 2, 2)" in done.stdout, done.stderr
    assert done.returncode != 0
    assert 'pip install "mmcam[demo]"' in done.stderr.strip().splitlines()[-1]
