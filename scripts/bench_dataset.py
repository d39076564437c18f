"""Benchmark the dataset scripts: images per second and peak memory at two dataset sizes.

Runs scripts/explain_captions.py and/or scripts/explain_vqa.py from scratch (a fresh output
folder each) on the first N and the first 10 N images, each in its own process, and reads:
the run's images per second (timing.json: explaining and writing, not imports or model
loading), and the peak resident memory of the main process and of its DataLoader workers
(getrusage). Memory that stays flat from N to 10 N images shows nothing grows with the data.

    python scripts/bench_dataset.py                   # 50 and 500 shapes val images, both tasks

Prints a table and ends with one JSON line; writes OUT/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from mmcam.cli.options import add_out, add_root, add_split
from mmcam.runs.tasks import TASKS, chosen

HERE = Path(__file__).resolve().parent
MEASURE = """
import json, resource, runpy, sys
script, *arguments = sys.argv[1:]
sys.argv = [script, *arguments]
runpy.run_path(script, run_name="__main__")
kib = 1024
print(json.dumps({
    "peak_mib_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
    "peak_mib_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
}))
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--task",
        choices=[*TASKS, "both"],
        default="both",
        help="which script to measure (default: %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        default=[50, 500],
        metavar=("N", "M"),
        help="the two dataset sizes in images (default: 50 500)",
    )
    add_root(parser)
    add_split(parser, help="split to read (default: %(default)s)")
    add_out(parser, "out/bench_dataset", "the runs")
    parser.add_argument(
        "--extra",
        default="",
        help="more options passed to both scripts as one string, e.g. "
        "'--workers 2 --deletion-steps 20 --batch-size 16'",
    )
    return parser


def measure(task: str, size: int, args: argparse.Namespace) -> dict:
    """One fresh run of a script on `size` images, in its own process."""
    out = Path(args.out) / f"{task}-{size}"
    shutil.rmtree(out, ignore_errors=True)
    script = HERE / f"explain_{task}.py"  # each task's script: explain_captions, explain_vqa
    arguments = ["--root", args.root, "--split", args.split, "--limit", str(size)]
    arguments += ["--out", str(out), "--no-progress", *args.extra.split()]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(script), *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    *_, run_line, memory_line = done.stdout.strip().splitlines()
    run, memory = json.loads(run_line), json.loads(memory_line)
    return {
        "task": task,
        "images": size,
        "images_per_second": run["images_per_second"],
        "seconds": run["seconds"],
        "peak_mib_main": round(memory["peak_mib_main"], 1),
        "peak_mib_workers": round(memory["peak_mib_workers"], 1),
    }


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    tasks = [task.id for task in chosen(args.task)]
    rows = [measure(task, size, args) for task in tasks for size in args.sizes]
    print(f"{'task':<9} {'images':>6} {'img/s':>7} {'seconds':>8} {'peak MiB':>9} {'workers':>8}")
    for row in rows:
        print(
            f"{row['task']:<9} {row['images']:>6} {row['images_per_second']:>7.2f} "
            f"{row['seconds']:>8.1f} {row['peak_mib_main']:>9.0f} {row['peak_mib_workers']:>8.0f}"
        )
    figures = {"runs": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "metrics.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
