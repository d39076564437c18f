"""A method registered in one place (`mmcam.methods.registry.register`) is offered by the dataset
scripts' --method, its options become flags that reach the run's stamp, and the sanity check
runs it, with no other edit; an unknown task id is refused with the ids there are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from repo_files import script

from mmcam.methods import formulas, registry
from mmcam.methods.perturbation import occlusion
from mmcam.runs import tasks
from mmcam.runs.command_line import options_from_arguments
from mmcam.studies.sanity import classifier_rows, sanity_methods, signed_maps


@dataclass(frozen=True)
class SquareOptions:
    """The test's perturbation: occlusion by a `side`-pixel square."""

    side: int = 6
    sweep_batch: int | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"window": self.side, "stride": self.side, "batch_size": self.sweep_batch}


@pytest.fixture
def new_methods():
    """A perturbation and a gradient method registered for the test only."""
    records = [
        registry.Method(
            "square_occlusion", "Square occlusion", "perturbation", occlusion,
            registry.CNN, options=SquareOptions,
        ),
        registry.Method(
            "plain_gradcam", "Plain Grad-CAM", "gradient", formulas.gradcam, registry.CNN,
            sanity=True,
        ),
    ]  # fmt: skip
    for record in records:
        registry.register(record)
    try:
        yield records
    finally:
        for record in records:
            registry.unregister(record.id)


@pytest.mark.parametrize("name", ["explain_captions", "explain_vqa"])
def test_the_dataset_scripts_offer_a_registered_method_and_its_options(new_methods, name):
    parser = script(name).build_parser()
    for method in ("square_occlusion", "plain_gradcam"):
        assert parser.parse_args(["--method", method]).method == method
    args = parser.parse_args(["--method", "square_occlusion", "--side", "5", "--window", "9"])
    options = options_from_arguments(args)
    stamp = options.stamp()
    assert (stamp["side"], stamp["sweep_batch"]) == (5, None)
    assert "window" not in stamp  # occlusion's option: not this method's
    assert "sweep_chunking" in stamp
    assert options.perturbation() == {"window": 5, "stride": 5, "batch_size": None}


def test_the_sanity_check_runs_a_registered_method(new_methods, tiny_classifier):
    assert {"square_occlusion", "plain_gradcam"} <= set(sanity_methods())
    parser = script("sanity_check").build_parser()
    args = parser.parse_args(["--methods", "plain_gradcam", "square_occlusion"])
    assert args.methods == ["plain_gradcam", "square_occlusion"]
    assert "plain_gradcam" in parser.parse_args([]).methods  # it has a verdict: checked
    model, images = tiny_classifier
    rows = classifier_rows(images, torch.tensor([1, 3, 0]), "features")
    maps = signed_maps(rows, model, ["plain_gradcam", "gradcam", "square_occlusion"])
    torch.testing.assert_close(maps["plain_gradcam"], maps["gradcam"])
    drop = occlusion(model, images, rows.target, window=6, stride=6).raw[:, 0]
    torch.testing.assert_close(maps["square_occlusion"], drop)


def test_a_task_is_found_by_its_id_and_an_unknown_one_is_refused_naming_the_others():
    assert [task.id for task in tasks.TASKS.values()] == ["captions", "vqa"]
    assert tasks.get("vqa").results_file == "vqa_results.json"
    assert [task.id for task in tasks.chosen("both")] == ["captions", "vqa"]
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of captions, vqa"):
        tasks.get("nope")
