"""The timing harness the benchmarks share: one timed call, medians, interleaved repeats.

Run the benchmarks as scripts (python benchmarks/bench_x.py): this folder is then on sys.path.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Median wall time of `repeats` calls, after one untimed warm-up call unless told not to."""
    if warmup:
        fn()
    return statistics.median(timed(fn)[0] for _ in range(max(1, repeats)))


def interleaved_medians(
    cases: Mapping[str, Callable[[], Callable[[], object]]], repeats: int
) -> dict[str, float]:
    """Median wall time per case. Each case is a setup (untimed, e.g. a fresh model) that returns
    the call to time; every repeat runs all cases in turn, so load from other processes on a
    shared machine hits them alike."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(max(1, repeats)):
        for name, setup in cases.items():
            times[name].append(timed(setup())[0])
    return {k: statistics.median(v) for k, v in times.items()}
