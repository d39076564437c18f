"""The browser tests write their screenshots to a temporary folder; only `make screenshots`
(MMCAM_SCREENSHOTS) sends them to demos/screenshots/, which the demo page shows."""

from __future__ import annotations

from pathlib import Path

from test_browser import screenshot_folder

README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "demos" / "screenshots"


def test_screenshots_go_to_a_temporary_folder_unless_make_screenshots_asks(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCAM_SCREENSHOTS", raising=False)
    assert screenshot_folder(tmp_path) == tmp_path
    monkeypatch.setenv("MMCAM_SCREENSHOTS", str(README_SCREENSHOTS))
    assert screenshot_folder(tmp_path) == README_SCREENSHOTS


def test_make_screenshots_points_the_browser_tests_at_the_readme_folder():
    makefile = (README_SCREENSHOTS.parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nscreenshots:", 1)[1].split("\n\n", 1)[0]
    assert "MMCAM_SCREENSHOTS=$(CURDIR)/demos/screenshots" in recipe
    assert "tests/app/test_browser.py" in recipe
