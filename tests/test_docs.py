"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing page or an
API reference entry that names nothing fails it), and every Python example in it runs as pasted
(those that need the network are marked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
EXAMPLES = [
    (f"{page.relative_to(ROOT / 'docs')}#{index}", block)
    for page in PAGES
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
    if not block.startswith("# needs network")
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built once, strictly: the completed build and its folder."""
    folder = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return done, folder


def test_the_site_builds_strictly(site):
    done, folder = site
    assert done.returncode == 0, done.stderr
    assert (folder / "reference" / "core" / "index.html").exists()


def test_every_name_in_mmcam_all_is_importable_and_rendered_in_the_api_reference(site):
    """`import mmcam` exposes each name of `mmcam.__all__`, and the API reference renders it under
    the module that defines it (mkdocstrings anchors an object by its full path; one without a
    docstring, or in no `:::` page, would have no anchor)."""
    import mmcam

    done, folder = site
    assert done.returncode == 0, done.stderr
    rendered = "".join(page.read_text() for page in (folder / "reference").rglob("*.html"))
    missing = []
    for name in mmcam.__all__:
        assert hasattr(mmcam, name), f"mmcam.__all__ names {name}, which import mmcam lacks"
        path = f"{getattr(mmcam, name).__module__}.{name}"
        if f'id="{path}"' not in rendered:
            missing.append(path)
    assert missing == []


def test_the_docs_have_examples():
    assert EXAMPLES


@pytest.mark.parametrize("block", [b for _, b in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_docs_example_runs_as_pasted(block, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # every example prints what it made


def named_tests(design: str) -> list[tuple[str, str | None]]:
    """(file, test) for each `tests/...py::name` or `::name` (of the file named before it) in
    the Design page's "## Guarantees" table; (file, None) for a file named alone."""
    table = design.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    found, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", table):
        current = path or current
        if path or name:
            found.append((current, name or None))
    return found


def test_every_test_the_guarantees_table_names_exists():
    named = named_tests((ROOT / "docs" / "design.md").read_text())
    assert len(named) > 40
    missing = [
        f"{path}::{name}" if name else path
        for path, name in named
        if not (ROOT / path).is_file()
        or (name and not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M))
    ]
    assert missing == []


def test_every_public_function_and_class_documents_its_arguments():
    """Each function of `mmcam.__all__` has Google-style Args and Returns sections, and each class
    Args (its constructor's) or Attributes (a record or a protocol), as the API reference shows."""
    import inspect

    import mmcam

    lacking = []
    for name in mmcam.__all__:
        thing = getattr(mmcam, name)
        doc = inspect.getdoc(thing) or ""
        wanted = ("Args:", "Returns:") if inspect.isfunction(thing) else ("Args:|Attributes:",)
        lacking += [
            f"{name}: {section}"
            for section in wanted
            if not any(option in doc for option in section.split("|"))
        ]
    assert lacking == []
