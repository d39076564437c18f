"""The options every `mmcam` subcommand spells the same way (`--root`, `--split`, `--limit`,
`--out`, `--workers`, `--threads`, `--device`): one function per flag, so a flag's name, type and
wording are written once; a subcommand passes only what differs (its default, what the folder
holds)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = [
    "command_parser",
    "add_device",
    "add_limit",
    "add_out",
    "add_root",
    "add_split",
    "add_threads",
    "add_workers",
]


def command_parser(
    description: str, prog: str | None, formatter: type = argparse.RawDescriptionHelpFormatter
) -> argparse.ArgumentParser:
    """A subcommand's parser: its module docstring as the help (examples kept as written),
    `prog` the name in its usage line (None: the script's file name)."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=formatter)


def add_root(
    parser: Any, holds: str = "COCO 2014 / VQA v2 files", *, default: str = "data/shapes",
    flags: tuple[str, ...] = ("--root",),
) -> None:  # fmt: skip
    """`--root`: the dataset root (the training commands also call it `--data`)."""
    parser.add_argument(
        *flags, default=default, help=f"dataset root holding {holds} (default: %(default)s)"
    )


def add_split(parser: Any, *, default: str = "val", help: str | None = None) -> None:
    """`--split`: which split of the dataset (val to choose on, test to report)."""
    parser.add_argument(
        "--split",
        default=default,
        help=help
        or "split name: val to choose methods, layers and thresholds on, test to "
        "report (default: %(default)s)",
    )


def add_limit(parser: Any, *, default: int | None = None, what: str = "the first N images") -> None:
    """`--limit N`: only the first N items."""
    shown = "all" if default is None else "%(default)s"
    parser.add_argument(
        "--limit", type=int, default=default, help=f"only {what} (default: {shown})"
    )


def add_out(
    parser: Any, default: str | None, writes: str = "outputs", *, shown: str = "%(default)s",
    folder: bool = True,
) -> None:  # fmt: skip
    """`--out`: the folder (or with `folder=False` the JSON file) a command writes to; `writes`
    says what goes there (its help names the files), `shown` how the default reads in the help."""
    where = "output folder" if folder else "also write a JSON file of"
    parser.add_argument("--out", default=default, help=f"{where} {writes} (default: {shown})")


def add_workers(parser: Any, *, default: int = 2) -> None:
    """`--workers`: DataLoader processes reading images."""
    parser.add_argument(
        "--workers",
        type=int,
        default=default,
        help="DataLoader processes reading images (0: in the main process) (default: %(default)s)",
    )


def add_threads(parser: Any, *, default: int = 1, why: str = "") -> None:
    """`--threads`: torch CPU threads."""
    parser.add_argument(
        "--threads", type=int, default=default,
        help=f"torch CPU threads{why} (default: %(default)s)",
    )  # fmt: skip


def add_benchmark(parser: Any, *, repeats: int, threads: int = 1) -> None:
    """The flags every benchmark script shares: `--repeats` (timed repeats per contender),
    `--threads` and `--out` (a JSON file of the figures)."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed repeats per contender")
    add_threads(parser, default=threads)
    add_out(parser, None, "the figures", shown="none", folder=False)


def add_transformer(parser: Any, tasks: Any, *, default: str) -> None:
    """`--task` (one of `tasks`, the study's table keyed by task id) and `--hf`: which task a
    transformer study runs and the model it runs on (a BLIP captioner for captions, a ViLT
    model for VQA)."""
    parser.add_argument(
        "--task",
        choices=list(tasks),
        default=default,
        help="captions: a BLIP model's words; vqa: a ViLT model's answers (default: %(default)s)",
    )
    parser.add_argument("--hf", required=True, help="the model's folder or hub name")


def add_device(parser: Any) -> None:
    """`--device`: where the models run."""
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, ... ; auto: this rank's GPU when there is one (default: auto)",
    )
