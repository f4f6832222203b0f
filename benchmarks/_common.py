"""Helpers shared by the benchmarks: timing, medians, markdown tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn``, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Renders rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def epoch_timer(times: list[float]):
    """A Keras callback appending each epoch's wall time to ``times`` (imports Keras)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    return EpochTimer()
