"""The installed `mmcam` command: its subcommands, their help naming what they write, the same
outputs as the former scripts, and a refusal in one `error:` line with exit status 2."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from repo_files import ROOT, script

from mmcam import cli
from mmcam.data.annotations import read_coco_captions, split_paths
from mmcam.data.files import write_json
from mmcam.data.shapes import write_shapes
from mmcam.data.vocab import Vocabulary
from mmcam.zoo.captioner import Captioner, CaptionerConfig, save_captioner

tomllib = pytest.importorskip("tomllib")  # Python 3.11 on

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
SUBCOMMANDS = [
    "explain-captions", "explain-vqa", "sanity", "choose-boxes", "compare-boxes",
    "train-captioner", "train-vqa", "make-shapes", "demo",
]  # fmt: skip
# what each subcommand's --help must name: the files it writes
WRITES = {
    "explain-captions": ["captions_results.json", "boxes_results.json", "maps.npz", "metrics.json",
                         "report.txt"],
    "explain-vqa": ["vqa_results.json", "boxes_results.json", "maps.npz", "metrics.json",
                    "report.txt"],
    "sanity": ["metrics.json", "sanity_curves.png", "sanity_<task>_<n>.png"],
    "choose-boxes": ["box_settings.json", "OUT/<task>/<method>@<layer>/"],
    "compare-boxes": ["boxes_results.json", "metrics.json", "OUT/<task>/<method>@<layer>/"],
    "train-captioner": ["config.json", "vocab.json", "model.pt", "history.json"],
    "train-vqa": ["config.json", "vocab.json", "answers.json", "model.pt", "history.json"],
    "make-shapes": ["captions_SPLIT2014.json", "instances_SPLIT2014.json",
                    "v2_OpenEnded_mscoco_SPLIT2014_questions.json",
                    "v2_mscoco_SPLIT2014_annotations.json"],
    "demo": ["PNG", ".npz"],
}  # fmt: skip
SCRIPTS = {
    "explain-captions": "explain_captions", "explain-vqa": "explain_vqa",
    "sanity": "sanity_check", "choose-boxes": "choose_boxes", "compare-boxes": "compare_boxes",
    "train-captioner": "train_captioner", "train-vqa": "train_vqa", "make-shapes": "make_shapes",
}  # fmt: skip


def installed_mmcam(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`mmcam ARGV` as the installed console script runs it: `sys.exit(main())` of the entry
    point that pyproject.toml names, with the program called mmcam."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["mmcam"]
    module, function = target.split(":")
    code = f"import sys\nfrom {module} import {function}\nsys.argv[0] = 'mmcam'\n"
    code += f"sys.exit({function}())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=ENV, cwd=cwd,
        timeout=300,
    )  # fmt: skip


def test_pyproject_installs_mmcam_from_the_cli_package():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mmcam": "mmcam.cli:main"}


def test_mmcam_help_lists_every_subcommand_with_one_line_each():
    done = installed_mmcam("--help")
    assert done.returncode == 0 and done.stderr == ""
    assert list(cli.COMMANDS) == SUBCOMMANDS
    for name in SUBCOMMANDS:
        summary = cli.COMMANDS[name][1]
        assert name in done.stdout and summary.split()[0] in done.stdout
    assert done.stdout.startswith("usage: mmcam")


def test_an_unknown_subcommand_is_refused_with_the_choices():
    done = installed_mmcam("explain")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "invalid choice: 'explain'" in done.stderr and "explain-captions" in done.stderr


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_help_names_what_it_writes(name, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([name, "--help"])
    assert exit.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: mmcam {name} ")
    missing = [output for output in WRITES[name] if output not in shown]
    assert missing == []


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_former_scripts_run_the_subcommands_code(name):
    module = script(SCRIPTS[name])
    command = importlib.import_module(f"mmcam.cli.{cli.COMMANDS[name][0]}")
    assert module.main is command.main and module.build_parser is command.build_parser


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    """3 shapes val scenes and a tiny untrained captioner."""
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, "val", 3, seed=0)
    references = read_coco_captions(split_paths(root, "val")["captions"]).captions
    vocab = Vocabulary.build(c for captions in references.values() for c in captions)
    torch.manual_seed(0)
    config = CaptionerConfig(
        len(vocab), [8, 8, 8], memory_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8
    )
    checkpoint = tmp_path_factory.mktemp("models") / "captioner"
    save_captioner(Captioner(config, vocab), checkpoint)
    return root, checkpoint


def test_explain_captions_writes_what_the_former_script_writes_byte_for_byte(dataset, tmp_path):
    root, checkpoint = dataset
    options = [
        "--root", str(root), "--checkpoint", str(checkpoint), "--chunk-size", "2",
        "--batch-size", "2", "--deletion-steps", "2", "--tie-orders", "1",
        "--road-fractions", "0.5", "--workers", "0", "--no-progress", "--max-length", "4",
    ]  # fmt: skip
    installed = installed_mmcam("explain-captions", *options, "--out", str(tmp_path / "command"))
    former = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "explain_captions.py"), *options,
         "--out", str(tmp_path / "script")],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert installed.returncode == former.returncode == 0, installed.stderr + former.stderr
    ignored = {"timing.json", ".lock"}  # how long it took; the writer's process id

    def files(folder: Path) -> dict[str, bytes]:
        return {
            str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name not in ignored
        }

    command, former_files = files(tmp_path / "command"), files(tmp_path / "script")
    assert {"captions_results.json", "maps.npz", "metrics.json", "report.txt"} <= set(command)
    assert command == former_files
    assert installed.stdout.splitlines()[-1].split('"seconds"')[0] == (
        former.stdout.splitlines()[-1].split('"seconds"')[0]
    )  # the same JSON line but for the timing


def test_a_refusal_through_the_entry_point_is_one_error_line_and_exit_two(tmp_path):
    root = tmp_path / "coco"
    questions = split_paths(root, "val")["questions"]
    questions.parent.mkdir(parents=True, exist_ok=True)
    write_json(questions, {"questions": [{"image_id": 1, "question": "is there a circle?"}]})
    done = installed_mmcam(
        "explain-vqa", "--root", str(root), "--no-annotations", "--no-instances",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: {questions}: a question lacks ['question_id']; found keys ['image_id', "
        "'question']\n"
    )
