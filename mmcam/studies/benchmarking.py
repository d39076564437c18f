"""Side-by-side timing for the benchmark scripts: interleaved repeats, medians, one JSON line."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def time_side_by_side(
    contenders: dict[str, Callable[[], object]], repeats: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in seconds of each contender.

    Repeats are interleaved (a, b, c, a, b, c, ...) so a load change on the machine hits every
    contender alike and the ratios stay meaningful even when absolute times drift.
    """
    for _ in range(warmup):
        for run in contenders.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def report(
    times: dict[str, float], figures: dict[str, float], out: str | Path | None = None
) -> None:
    """Print a table of median times, then the figures as the final line of JSON.

    With `out`, the figures and times are also written there as JSON.
    """
    width = max(len(name) for name in times)
    print(f"{'contender':<{width}}  median ms")
    for name, seconds in times.items():
        print(f"{name:<{width}}  {seconds * 1e3:9.1f}")
    figures = {key: round(value, 3) for key, value in figures.items()}
    if out is not None:
        Path(out).write_text(json.dumps({"figures": figures, "median_seconds": times}, indent=2))
    print(json.dumps(figures))
