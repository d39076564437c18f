"""The package layering of the Design page's "Layout" section (docs/design.md) holds: no module
imports from a package above it, and that section names every package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmcam"
DESIGN = PACKAGE.parent / "docs" / "design.md"

# package -> the mmcam packages its modules may import (itself included)
ALLOWED = {
    "_moved": set(),  # former module paths: imports its targets by name, at run time
    "core": {"core"},
    "data": {"data"},
    "visualize": {"core", "visualize"},
    # activation maximisation's filter_grid draws the images it made
    "methods": {"core", "visualize", "methods"},
    # the former box names (mmcam.evaluation.boxes_from_map, ...) resolve through mmcam._moved
    "evaluation": {"core", "evaluation", "_moved"},
    # a box's evidence is scored by the pointing and energy measures of evaluation
    "boxes": {"core", "evaluation", "boxes"},
    "explainers": {"core", "methods", "explainers"},
    "zoo": {"core", "data", "evaluation", "zoo"},
}
ALLOWED["runs"] = set(ALLOWED) | {"runs"}  # everything below
ALLOWED["studies"] = ALLOWED["runs"] | {"studies"}  # experiments built on the engine
ALLOWED["app"] = ALLOWED["studies"] | {"app"}
ALLOWED["cli"] = ALLOWED["app"] | {"cli"}  # the mmcam command: everything; nothing imports it


def package_of(module: str) -> str | None:
    """The layer of a dotted module name under mmcam ("mmcam.methods.cam" -> "methods")."""
    parts = module.split(".")
    if parts[0] != "mmcam" or len(parts) == 1:
        return None
    return parts[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every mmcam module `path` imports, at any depth (function-level imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("mmcam.")]


def violations(root: Path = PACKAGE) -> list[str]:
    """'file:line imports module' for each import that points up or sideways."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative == Path("__init__.py"):
            continue  # the top level re-exports the public API from every layer
        layer = relative.parts[0].removesuffix(".py")
        if layer not in ALLOWED:
            bad.append(f"{relative}: not in any layer of ALLOWED")
            continue
        for line, module in imported_modules(path):
            if package_of(module) not in ALLOWED[layer]:
                bad.append(f"{relative}:{line} imports {module}")
    return bad


def test_every_module_imports_only_from_its_own_layer_or_below():
    assert violations() == []


def test_layering_check_catches_an_upward_import(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "tap.py").write_text(
        "def f():\n    from mmcam.runs.run import run_dataset\n"
    )
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "cam.py").write_text("from mmcam.core.tap import Tap\n")
    assert violations(tmp_path) == ["core/tap.py:2 imports mmcam.runs.run"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_is_a_folder_or_module_that_exists(layer):
    assert (PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").is_file()


LINE_CAP = 400


def test_no_module_is_over_four_hundred_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > LINE_CAP
    }
    assert long == {}


def layout_section(design: str) -> str:
    """The Design page's "## Layout" section, up to the next section."""
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", design, re.M | re.S)
    assert match, "docs/design.md has no '## Layout' section"
    return match.group(1)


def test_the_design_pages_layout_names_every_package():
    rows = re.findall(r"^\| `([\w.]+?)(?:/|\.py)?` \|", layout_section(DESIGN.read_text()), re.M)
    missing = set(ALLOWED) - set(rows)
    assert not missing, f"missing from the Design page's Layout: {missing}"
