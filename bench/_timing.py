"""Timing helpers shared by the benchmarks (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def best_medians(
    tasks: Mapping[K, Callable[[], object]], repeats: int, rounds: int
) -> dict[K, float]:
    """Each task's best median over ``rounds`` round-robin passes (after a warm-up
    call each, which also triggers any JIT compilation)."""
    for fn in tasks.values():
        fn()
    best = dict.fromkeys(tasks, float("inf"))
    for _ in range(rounds):
        for key, fn in tasks.items():
            best[key] = min(best[key], median_ms(fn, repeats))
    return best
