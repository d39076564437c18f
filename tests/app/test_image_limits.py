"""The demo refuses an image over PIL's decompression-bomb limit with a clear message, whether
uploaded as a file or pasted as a data URL, never decoding it."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from mmcam.app.inputs import InputError, read_image

LIMIT = 30 * 30


@pytest.mark.parametrize("side", [40, 50])  # 1,600 pixels: PIL only warns; 2,500: PIL raises
@pytest.mark.parametrize("how", ["file", "pasted"])
def test_an_image_over_the_decompression_bomb_limit_is_refused(tmp_path, monkeypatch, side, how):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), "red").save(buffer, "PNG")
    if how == "file":
        path = tmp_path / "big.png"
        path.write_bytes(buffer.getvalue())
        source, name = {"path": str(path)}, "big.png"
    else:
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        source, name = {"path": None, "url": url}, "The pasted image"
    with pytest.raises(InputError) as error:
        read_image(source)
    assert str(error.value).startswith(
        f"{name} has more pixels than the decompression-bomb limit of {LIMIT}"
    )


def test_an_image_under_the_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)
    Image.new("RGB", (30, 30), "red").save(tmp_path / "small.png")
    assert read_image({"path": str(tmp_path / "small.png")}).size == (30, 30)
