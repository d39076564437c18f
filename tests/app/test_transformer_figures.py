"""`make run`'s transformer part: BLIP's captions of the bundled samples, every word mapped by
each attention method, and where the shape words' maps peak."""

import json

from PIL import Image

from mmcam.app.sample_figures import SAMPLES
from mmcam.app.transformer_figures import attention_methods, write_transformer_figures
from mmcam.methods import registry


def test_blip_figures_are_written_and_relevance_points_at_the_named_shapes(tmp_path):
    samples = write_transformer_figures(tmp_path, SAMPLES)
    assert json.loads((tmp_path / "transformer_summary.json").read_text()) == samples
    assert attention_methods()[0] == "relevance" and len(attention_methods()) == 4
    for sample in samples:
        assert sample["caption"].startswith("a ")
        with Image.open(sample["figure"]) as image:  # a grid of panels, not an empty canvas
            assert min(image.size) > 500 and len(image.convert("L").getcolors(65536)) > 50
    points = [p for s in samples for p in s["word_pointing"]]
    names = {registry.get(m).name for m in attention_methods()}
    assert len(points) >= 6 and all(set(p["peak_inside"]) == names for p in points)
    assert sum(p["peak_inside"]["Relevance"] for p in points) >= 4
    (star,) = [p for p in points if p["word"] == "green star"]  # alone in its scene
    assert all(star["peak_inside"].values())
