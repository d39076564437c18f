"""The demo in a real browser: Debian's chromium driven by playwright opens the page, picks an
example, clicks, waits for the heat map, and takes screenshots; the output images are checked
from the screenshot's pixels, the caption / answer from the page. The screenshots go to a
temporary folder; `make screenshots` sets MMCAM_SCREENSHOTS to refresh the demo page's in
demos/screenshots/."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from test_demo import load_app, model_input  # noqa: E402

from mmcam.app.demo import Demo  # noqa: E402
from mmcam.app.inputs import bundled_examples  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make chromium installs it)"
)


def screenshot_folder(temporary: Path) -> Path:
    """Where the screenshots go: MMCAM_SCREENSHOTS when set (`make screenshots`), else
    `temporary`, so running the tests changes no tracked file."""
    return Path(os.environ.get("MMCAM_SCREENSHOTS") or temporary)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = screenshot_folder(tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Demo.load(work_dir=tmp_path_factory.mktemp("downloads"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def page_url(demo):
    app = load_app()
    page = app.build(demo)
    yield app.launch(page, "127.0.0.1", 0, block=False)
    page.close()


@pytest.fixture(scope="module")
def browser_page(page_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(page_url)
        page.wait_for_selector("#caption-run")
        yield page
        browser.close()


def shown_pixels(screenshot: bytes, page, selector: str) -> np.ndarray:
    """The pixels of the element `selector` in a full-page screenshot, `[h, w, 3]` uint8."""
    box = page.locator(selector).bounding_box()
    scroll = page.evaluate("[window.scrollX, window.scrollY]")
    left, top = round(box["x"] + scroll[0]), round(box["y"] + scroll[1])
    image = np.asarray(Image.open(io.BytesIO(screenshot)).convert("RGB"))
    return image[top : top + round(box["height"]), left : left + round(box["width"])]


def assert_heat_map_shown(pixels: np.ndarray) -> None:
    """Not blank: the drawn map spans colours, including the colour map's hot and cold ends."""
    assert pixels.size > 100 * 100 * 3, pixels.shape
    assert pixels.std() > 20, "the output image is blank"
    red, blue = pixels[..., 0].astype(int), pixels[..., 2].astype(int)
    # a peaked map warms only a few dozen pixels of the shown 384 x 384: count them, not a share
    assert ((red - blue) > 60).sum() >= 20, "no warm (evidence) colour in the heat map"
    assert ((blue - red) > 60).mean() > 0.05, "no cold colour in the heat map"


def image_src(page, selector: str) -> str | None:
    image = page.locator(f"{selector} img")
    return image.get_attribute("src") if image.count() else None


def wait_for_new_image(page, selector: str, previous: str | None) -> None:
    """Until `selector` shows an image whose source differs from `previous`, fully loaded."""
    page.wait_for_function(
        """([selector, previous]) => {
            const image = document.querySelector(selector + " img");
            return image && image.src !== previous && image.complete && image.naturalWidth > 0;
        }""",
        arg=[selector, previous],
    )


def wait_until_idle(page) -> None:
    """Until no component shows Gradio's progress overlay (no event is pending)."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
            .every(tracker => tracker.classList.contains('hide') || !tracker.offsetParent)"""
    )


def test_captioning_tab_in_a_browser(browser_page, demo, screenshots):
    page = browser_page
    sample = bundled_examples()[0]
    expected = demo.captioner.caption(model_input(sample.image))[0]
    words = expected.split()
    target = next(i for i, w in enumerate(words) if w not in ("a", "an", "the"))  # a noun/colour
    target = next((i for i, w in enumerate(words) if i > target and w not in ("a", "an")), target)

    examples = page.locator("#caption-image").locator(
        "xpath=ancestor::div[contains(@class,'column')][1]"
    )
    examples.locator("button.gallery-item").first.click()
    page.wait_for_selector("#caption-image img")
    page.get_by_role("radio", name="HiResCAM").check()  # it points best on these models
    wait_until_idle(page)
    page.click("#caption-run")
    wait_for_new_image(page, "#caption-map", None)
    page.wait_for_function(
        "text => document.querySelector('#caption-text textarea').value === text", arg=expected
    )
    first = image_src(page, "#caption-map")
    page.locator("#caption-word input").click()
    page.locator("#caption-word [role=option]").nth(target + 1).click()
    wait_for_new_image(page, "#caption-map", first)
    page.wait_for_function(
        "n => document.querySelectorAll('#caption-gallery img').length === n", arg=len(words)
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#caption-gallery img')].every(i => i.complete)"
    )

    wait_until_idle(page)
    assert page.locator("#caption-text textarea").input_value() == expected
    assert page.locator("#caption-word input").input_value() == f"{target + 1}: {words[target]}"
    assert page.locator("#caption-box textarea").input_value().startswith("[x, y, w, h] = [")
    assert page.get_by_role("radio", name="HiResCAM").is_checked()
    files = "xpath=following::td[contains(@class,'filename')][1]"
    download = page.locator("#caption-map").locator(files)
    assert download.get_attribute("aria-label").endswith("-hirescam.png")
    screenshot = page.screenshot(full_page=True)
    (screenshots / "captioning.png").write_bytes(screenshot)
    assert_heat_map_shown(shown_pixels(screenshot, page, "#caption-map img"))
    assert_heat_map_shown(shown_pixels(screenshot, page, "#caption-gallery"))


def test_vqa_tab_in_a_browser(browser_page, demo, screenshots):
    page = browser_page
    page.get_by_role("tab", name="VQA").click()
    column = page.locator("#vqa-image").locator("xpath=ancestor::div[contains(@class,'column')][1]")
    column.locator("tr.tr-body").first.click()
    page.wait_for_selector("#vqa-image img")
    question = page.locator("#vqa-question textarea").input_value()
    sample = next(e for e in bundled_examples() if question in e.questions)
    expected = demo.vqa_model.answer(model_input(sample.image), [question])[0]

    page.click("#vqa-run")
    wait_for_new_image(page, "#vqa-map", None)
    wait_for_new_image(page, "#vqa-counterfactual", None)
    page.wait_for_function(
        "a => document.querySelector('#vqa-chosen input').value === a", arg=expected
    )

    assert (
        page.locator("#vqa-answers h2, #vqa-answers .output-class").first.inner_text() == expected
    )
    screenshot = page.screenshot(full_page=True)
    (screenshots / "vqa.png").write_bytes(screenshot)
    assert_heat_map_shown(shown_pixels(screenshot, page, "#vqa-map img"))
    assert shown_pixels(screenshot, page, "#vqa-counterfactual img").std() > 20

    # Bad input is answered in the page, and the page stays usable.
    page.locator("#vqa-question textarea").fill("zorp blick?")
    page.click("#vqa-run")
    page.get_by_text(
        "knows none of the words of this question (unknown: 'zorp', 'blick')"
    ).wait_for()
    assert (
        page.locator("#vqa-answers h2, #vqa-answers .output-class").first.inner_text() == expected
    )
