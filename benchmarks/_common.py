"""Helpers shared by the benchmarks: timing, medians, markdown tables, target lines."""

from __future__ import annotations

import json
import math
import operator
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

_COMPARISONS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn``, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spawn_cell(script: str, *args: str) -> dict | None:
    """Runs ``script --cell *args`` in a fresh Python process and returns the JSON its
    last line prints, or ``None`` (with its error output on stderr) when it failed."""
    cmd = [sys.executable, script, "--cell", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(f"cell {'/'.join(args)} failed:\n{proc.stderr[-2000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Renders rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, comparison: str, bound: float) -> str:
    """Labels a measured value against its target ``value <comparison> bound``.

    Returns ``"met"`` or ``"not met"``, or ``"not measured"`` when ``value`` is NaN (a
    cell that did not run).

    Example:
        >>> verdict(0.95, ">=", 1.2), verdict(21.4, ">=", 15), verdict(float("nan"), "<", 1)
        ('not met', 'met', 'not measured')
    """
    if math.isnan(value):
        return "not measured"
    return "met" if _COMPARISONS[comparison](value, bound) else "not met"


def target_line(
    name: str, value: float, comparison: str, bound: float, unit: str = "x", digits: int = 2
) -> str:
    """One target as every benchmark prints it: the value, the target and its verdict.

    Example:
        >>> target_line("hdf5: seqpipe vs raw h5py", 0.951, ">=", 1.2)
        'hdf5: seqpipe vs raw h5py: 0.95x (target >= 1.2x): not met'
        >>> target_line("first batch", 1.78, "<=", 5, unit=" ms")
        'first batch: 1.78 ms (target <= 5 ms): met'
        >>> target_line("tiny: seqpipe vs PyTorch", float("nan"), ">=", 15)
        'tiny: seqpipe vs PyTorch: - (target >= 15x): not measured'
    """
    shown = "-" if math.isnan(value) else f"{value:.{digits}f}{unit}"
    return (
        f"{name}: {shown} (target {comparison} {bound}{unit}): {verdict(value, comparison, bound)}"
    )


def epoch_timer(times: list[float]):
    """A Keras callback appending each epoch's wall time to ``times`` (imports Keras)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    return EpochTimer()
