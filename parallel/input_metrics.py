"""`InputMonitor`: what an enqueuer's input pipeline is doing, measured while it runs.

The consumer's side (seconds waited for batches, batches delivered) is counted by the
enqueuer around each batch it hands over: two clock reads, no system call. The workers'
side is read from their clock slots (NOTE [ Worker clocks ] in
``parallel/worker_clocks.py``): a `Pipeline`'s stages are timed where they run
(`StageTimed`); a plain `Sequence` is one stage, whose time worker processes already
keep (their busy time, less the waits for segments), so it runs unwrapped there. A
thread samples the queue depth (twice a second, ten times with ``workers="auto"``) and
runs the worker-count tuner of ``workers="auto"`` (NOTE [ Tuning the worker count ] in
``parallel/autotune.py``).
`InputMetrics` between two readings are what TensorBoard shows (``input/...``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .autotune import Tuning
from .worker_clocks import ZERO, PoolStats

logger = logging.getLogger(__name__)

# How often the thread samples: often enough for the tuner's windows, else twice a
# second (each wake-up takes the GIL from the threads that move batches).
TUNING_TICK_SECONDS = 0.1
SAMPLING_TICK_SECONDS = 0.5


@dataclass(frozen=True)
class InputReading:
    """Running totals at one moment (``time`` from ``time.monotonic``)."""

    time: float
    waited: float
    delivered: int
    depth_sum: float
    depth_samples: int
    pool: PoolStats
    stage_seconds: tuple[float, ...]
    timed_batches: int


@dataclass(frozen=True)
class InputMetrics:
    """The input pipeline between two readings, as TensorBoard shows it.

    ``wait_fraction``: share of the time the consumer waited for a batch;
    ``batches_per_second`` delivered; ``stage_ms``: milliseconds per batch in each stage
    (named as `print_summary` names them; empty when stages are not timed), over the
    batches timed in between, or since the start when the workers, computing ahead,
    timed none in between;
    ``queue_depth``: batches computed and waiting for the consumer, on average;
    ``workers`` and ``segment_bytes`` (shared memory held) at the end.
    """

    seconds: float
    batches: int
    wait_fraction: float
    batches_per_second: float
    queue_depth: float
    workers: int
    segment_bytes: int
    stage_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def between(cls, a: InputReading, b: InputReading, names: list[str]) -> InputMetrics:
        """The metrics of the time from reading ``a`` to reading ``b``."""
        seconds = max(b.time - a.time, 1e-9)
        batches = b.delivered - a.delivered
        samples = b.depth_samples - a.depth_samples
        timed = b.timed_batches - a.timed_batches
        before = a.stage_seconds
        if timed <= 0:  # the workers ran ahead: their running averages instead
            timed, before = b.timed_batches, (0.0,) * len(b.stage_seconds)
        stage_ms = {}
        if timed > 0:
            for name, start, end in zip(names, before, b.stage_seconds, strict=False):
                stage_ms[name] = 1e3 * (end - start) / timed
        return cls(
            seconds=seconds,
            batches=batches,
            wait_fraction=min(1.0, (b.waited - a.waited) / seconds),
            batches_per_second=batches / seconds,
            queue_depth=(b.depth_sum - a.depth_sum) / samples if samples else float(b.pool.ready),
            workers=b.pool.workers,
            segment_bytes=b.pool.segment_bytes,
            stage_ms=stage_ms,
        )

    def scalars(self) -> dict[str, float]:
        """``{tag: value}`` under ``input/``, as written to TensorBoard.

        Example:
            >>> m = InputMetrics(2.0, 100, 0.25, 50.0, 3.0, 2, 1 << 20, {"Resize": 4.0})
            >>> m.scalars()["input/stage_ms/Resize"], m.scalars()["input/wait_fraction"]
            (4.0, 0.25)
        """
        scalars = {
            "input/wait_fraction": self.wait_fraction,
            "input/batches_per_second": self.batches_per_second,
            "input/queue_depth": self.queue_depth,
            "input/workers": float(self.workers),
            "input/segment_bytes": float(self.segment_bytes),
        }
        scalars.update({f"input/stage_ms/{name}": ms for name, ms in self.stage_ms.items()})
        return scalars


class InputMonitor:
    """Measures one running enqueuer (see the module's docstring).

    Args:
        pool_stats: returns the executor's `PoolStats` now.
        names: the stages measured, as `print_summary` names them (empty: none).
        timed: the `StageTimed` the workers compute through; ``None`` with ``names``
            means one stage, timed by the worker processes' busy clocks.
        tuning: the worker-count tuner of ``workers="auto"``, or ``None``.

    Example:
        >>> import numpy as np
        >>> from seqpipe.parallel import OrderedEnqueuer
        >>> from seqpipe.pipeline import Pipeline
        >>> enqueuer = OrderedEnqueuer(Pipeline(np.arange(8), 2), monitor=True)
        >>> enqueuer.start(workers=1)
        >>> first = enqueuer.monitor.read()
        >>> batches = list(enqueuer.iter_epoch())
        >>> metrics = enqueuer.monitor.metrics_since(first)
        >>> metrics.batches, sorted(metrics.stage_ms)
        (4, ['batch(size=2, shuffle=False)', 'source: ndarray(8,)'])
        >>> enqueuer.stop()
    """

    def __init__(
        self,
        pool_stats: Callable[[], PoolStats],
        names: list[str],
        timed: Any = None,
        tuning: Tuning | None = None,
    ) -> None:
        self._pool_stats = pool_stats
        self.names = names
        self.timed = timed
        self.tuning = tuning
        # Written by the consumer's thread only (`result`); read by any.
        self.waited = 0.0
        self.delivered = 0
        self._depth_sum = 0.0
        self._depth_samples = 0
        self.origin = self.read()  # when the enqueuer started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seqpipe-monitor", daemon=True)
        self._thread.start()

    @property
    def decisions(self) -> list[Any]:
        """The worker-count decisions of ``workers="auto"`` so far (else empty)."""
        return [] if self.tuning is None else list(self.tuning.decisions)

    def result(self, handle: Any) -> Any:
        """``handle.result()``, counting the wait and the batch delivered."""
        started = time.perf_counter()
        batch = handle.result()
        self.waited += time.perf_counter() - started
        self.delivered += 1
        return batch

    def read(self) -> InputReading:
        """The running totals now."""
        stats = self._pool_stats()
        totals = stats.totals
        stages, timed = totals.stages, totals.timed
        if self.timed is None and self.names:  # one stage: the workers' own clocks
            stages, timed = (totals.busy - totals.blocked,), totals.batches
        if self.timed is not None:
            local, local_batches = self.timed.local.read()
            if local_batches:  # threads or the consumer's thread computed these
                stages = tuple(a + b for a, b in zip(stages, local, strict=False))
                timed += local_batches
        return InputReading(
            time=time.monotonic(),
            waited=self.waited,
            delivered=self.delivered,
            depth_sum=self._depth_sum,
            depth_samples=self._depth_samples,
            pool=stats,
            stage_seconds=stages,
            timed_batches=timed,
        )

    def metrics_since(self, reading: InputReading) -> InputMetrics:
        """`InputMetrics` from ``reading`` to now."""
        return InputMetrics.between(reading, self.read(), self.names)

    def close(self) -> None:
        """Stops the sampling thread."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        failed = False
        tick = SAMPLING_TICK_SECONDS if self.tuning is None else TUNING_TICK_SECONDS
        while not self._stop.wait(tick):
            try:
                reading = self.read()
                self._depth_sum += reading.pool.ready
                self._depth_samples += 1
                if self.tuning is not None:
                    self.tuning.tick(reading)
            except Exception:  # a measurement must never stop the input
                if not failed:
                    logger.warning("input monitoring failed; it goes on", exc_info=True)
                failed = True


def thread_stats(workers: int, window: Any) -> PoolStats:
    """`PoolStats` of threads (or of the consumer's thread, ``workers=0``): no clock
    slots, no shared memory; ``ready`` counts the window's finished futures."""
    ready = sum(1 for _, future in list(window) if getattr(future, "done", bool)())
    return PoolStats(workers, workers, ready, 0, 0, ZERO, ())
