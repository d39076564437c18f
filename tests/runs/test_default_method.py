"""The method a user gets without naming one: chosen on val among the trusted methods, read at
the layer chosen for the model's architecture; any other choice is left as the user made it."""

import argparse
import dataclasses
import json

import pytest

from mmcam.boxes.settings import BOX_SETTINGS, DefaultMethod, default_method
from mmcam.cli.dataset_options import add_run_arguments
from mmcam.runs import command_line
from mmcam.runs.command_line import chosen_method
from mmcam.runs.models import load_run_captioner, load_run_vqa
from mmcam.studies.box_choice import choose_default


def test_the_default_is_the_most_accurate_trusted_method_at_each_architectures_best_layer():
    accuracy = {
        ("gradcam", "features", "Captioner"): 0.3,
        ("gradcam", "stem", "Captioner"): 0.5,
        ("gradcam", "features", "VQANet"): 0.9,
        ("hirescam", "features", "Captioner"): 0.8,
        ("hirescam", "stem", "Captioner"): 0.7,
        ("hirescam", "features", "VQANet"): 0.5,
        ("hirescam", "stem", "VQANet"): 0.75,
    }
    # gradcam: (0.5 + 0.9) / 2 = 0.70; hirescam: (0.8 + 0.75) / 2 = 0.775
    assert choose_default(accuracy) == {
        "method": "hirescam",
        "layers": {"Captioner": "features", "VQANet": "stem"},
    }


def test_the_chosen_layer_belongs_to_the_default_method_and_the_architectures_it_was_chosen_on(
    tmp_path,
):
    table = tmp_path / "box_settings.json"
    table.write_text(json.dumps({"default": {"method": "hirescam", "layers": {"str": "a.b"}}}))
    default = default_method(table)
    assert default == DefaultMethod("hirescam", {"str": "a.b"})
    assert default.layer_for("any string", "hirescam") == "a.b"
    assert default.layer_for("any string", "gradcam") is None
    assert default.layer_for(3, "hirescam") is None
    with pytest.raises(FileNotFoundError, match="choose_boxes.py"):
        default_method(tmp_path / "missing.json")
    table.write_text(json.dumps({"methods": {}}))
    with pytest.raises(ValueError, match="names no default method"):
        default_method(table)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)  # --layer among them
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "method", "layer"),
    [
        ((), "hirescam", "encoder.stem"),  # no choice made: the default at its chosen layer
        (("--method", "hirescam"), "hirescam", "encoder.stem"),
        (("--layer", "encoder.body"), "hirescam", "encoder.body"),
        (("--method", "gradcam"), "gradcam", "encoder.features"),  # the model's own layer
    ],
)
def test_scripts_fill_in_the_default_method_and_its_layer(monkeypatch, argv, method, layer):
    chosen = DefaultMethod("hirescam", {"Captioner": "encoder.stem"})
    monkeypatch.setattr(command_line, "default_method", lambda: chosen)
    args = parse(*argv)
    model = chosen_method(args, load_run_captioner(layer=args.layer))
    assert (args.method, model.layer) == (method, layer)
    vqa = chosen_method(parse(*argv), load_run_vqa(layer=args.layer))
    assert vqa.layer == (args.layer or "encoder.features")  # no layer chosen for VQANet here


def test_the_shipped_default_is_a_trusted_method_chosen_for_both_bundled_models():
    table = json.loads(BOX_SETTINGS.read_text())
    default = default_method()
    assert default.method in table["trusted"]
    assert "guided_backprop" not in table["trusted"]  # fails the sanity checks
    for model in (load_run_captioner(), load_run_vqa()):
        layer = default.layer_for(model.model, default.method)
        assert layer is not None
        dataclasses.replace(model, layer=layer)  # a layer the model has (else: ValueError)
