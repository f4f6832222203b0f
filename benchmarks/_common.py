"""Helpers shared by the benchmarks: timing, medians, markdown tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Renders rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
