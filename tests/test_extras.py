"""The core install is what the maps need; each other feature's libraries come with an extra,
and using a feature whose extra is missing says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11 on

ROOT = Path(__file__).resolve().parent.parent

# Each line runs with the extra's libraries made unimportable (None in sys.modules).
USES = {
    "boxes": (["cv2"], "import mmcam.boxes.refine"),
    "sanity": (["skimage"], "import mmcam.evaluation.map_similarity"),
    "coco": (
        ["pycocoevalcap"],
        "from mmcam.evaluation.caption_metrics import coco_caption_scores\n"
        "coco_caption_scores({1: 'a cat'}, {1: ['a cat']})",
    ),
    "hf": (
        ["transformers"],
        "from mmcam.explainers.hf import load_hf_captioner\nload_hf_captioner('somewhere')",
    ),
}
CORE = """
import torch, torchvision, mmcam
model = torchvision.models.resnet18().eval()
with mmcam.Tap(model, "layer4") as tap:
    logits = model(torch.rand(1, 3, 64, 64))
print(mmcam.grad_cam(tap, logits[:, 0]).raw.shape)
"""


def run_without(modules: list[str], code: str) -> subprocess.CompletedProcess:
    blocked = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{blocked}{code}"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.parametrize("extra", sorted(USES))
def test_a_feature_whose_extra_is_missing_names_the_extra(extra):
    modules, code = USES[extra]
    done = run_without(modules, code)
    assert done.returncode != 0
    assert f'pip install "mmcam[{extra}]"' in done.stderr.strip().splitlines()[-1]


def test_the_maps_need_no_extra():
    every = [m for modules, _ in USES.values() for m in modules] + ["gradio", "pycocotools"]
    done = run_without(every, CORE)
    assert done.returncode == 0, done.stderr
    assert "torch.Size([1, 2, 2])" in done.stdout


def test_the_package_declares_each_extra_and_all_of_them():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(USES) | {"demo"} <= set(extras)
    assert extras["all"] == ["mmcam[boxes,sanity,coco,hf,demo]"]
    assert "mmcam[boxes]" in extras["demo"]  # the page draws refined boxes
