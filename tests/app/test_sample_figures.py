"""`make run`'s job: figures and summary for the bundled samples with the bundled models."""

import json

from PIL import Image

from mmcam.app.sample_figures import POINTING_METHODS, write_sample_figures


def test_sample_figures_are_written_and_the_models_answer_and_point(tmp_path):
    result = write_sample_figures(tmp_path)
    samples = result["samples"]
    assert json.loads((tmp_path / "summary.json").read_text()) == samples
    for sample in samples:
        for figure in sample["figures"]:
            with Image.open(figure) as image:  # a grid of panels, not an empty canvas
                assert min(image.size) > 500 and len(image.convert("L").getcolors(65536)) > 50
    answers = [a["answer"] == a["expected"] for s in samples for a in s["answers"]]
    assert len(answers) == 20 and all(answers)
    points = [p["peak_inside"] for s in samples for p in s["word_pointing"]]
    assert len(points) >= 6 and all(set(p) == set(POINTING_METHODS) for p in points)
    assert sum(p["HiResCAM"] for p in points) / len(points) >= 0.75
    # boxes.png: the default map's boxes of one shape word per caption against the true box
    boxes = result["boxes"]
    assert len(boxes) == len(samples) and (tmp_path / "boxes.png").is_file()
    own = sum(b["threshold_iou"] >= 0.5 for b in boxes)
    refined = sum(b["refined_iou"] >= 0.5 for b in boxes)
    assert refined >= 3 and refined > own, boxes  # the image extends what the map found
