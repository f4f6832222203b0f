"""`WorkerClocks`: what each worker process measured, in memory shared with the parent.

Imports only the standard library and numpy: the worker loop (``worker.py``) writes its
slot, and whatever a worker imports it pays for at every start.

NOTE [ Worker clocks ]
Each worker keeps, in its own slot, its pid, when its loop started
(``time.monotonic``, one clock for every process), the seconds it spent computing
batches (busy, which includes the seconds it waited for a shared-memory segment:
blocked), the batches it computed, and the seconds spent in each stage of the pipeline
(written only while stages are timed, `StageTimed`, with the count of batches they
cover, both published every `PUBLISH_SECONDS` at most: a stage costs the worker an
addition to a Python float). The worker writes its slot alone, one double at a time, and
the parent only reads it, so a read may pair one batch's busy time with the previous
batch's count: a statistic off by one batch, never a torn number.
Per batch the worker reads no clock that it did not read before (the two that bracket
each task) and makes no system call: the profiler, the input metrics and
``workers="auto"`` read these slots from the parent. When a worker exits or dies, the
parent folds its slot into the pool's totals, so totals only grow.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

# Stages whose time a slot keeps: more than any pipeline summary we have seen.
MAX_STAGES = 32
# How stale the published stage times may be (NOTE [ Worker clocks ]).
PUBLISH_SECONDS = 0.05

_PID, _BOOTED, _BUSY, _BLOCKED, _BATCHES, _TIMED = range(6)
_STAGES = 6


class WorkerClock:
    """One worker's slot, written by that worker (NOTE [ Worker clocks ]).

    Args:
        slots: the pool's shared array of doubles (`WorkerClocks.array`).
        position: the worker's slot.

    Example:
        >>> from multiprocessing import RawArray
        >>> clock = WorkerClock(RawArray("d", WorkerClocks.SIZE), 0)
        >>> clock.boot()
        >>> clock.add_busy(0.25)
        >>> clock.add_stage(1, 0.5)
        >>> clock.end_timed(time.perf_counter())
        >>> reading = WorkerClocks.read_slot(clock.slots, 0)
        >>> reading.batches, reading.timed, reading.stages[1]
        (1, 1, 0.5)
    """

    def __init__(self, slots: Any, position: int) -> None:
        # A numpy view writes a double several times faster than ctypes item access.
        self.slots = np.frombuffer(slots, dtype=np.float64)
        self._base = position * WorkerClocks.SIZE
        self._stage_seconds = [0.0] * MAX_STAGES  # published by `end_timed`
        self._timed = 0
        self._published = float("-inf")

    def boot(self) -> None:
        """Records this process's pid and when its loop started (the worker, once)."""
        self.slots[self._base + _PID] = os.getpid()
        self.slots[self._base + _BOOTED] = time.monotonic()

    def add_busy(self, seconds: float) -> None:
        """Adds one computed batch and the seconds it took."""
        slots, base = self.slots, self._base
        slots[base + _BUSY] += seconds
        slots[base + _BATCHES] += 1.0

    def add_blocked(self, seconds: float) -> None:
        """Adds seconds spent waiting for a shared-memory segment."""
        self.slots[self._base + _BLOCKED] += seconds

    def add_stage(self, position: int, seconds: float) -> None:
        """Adds ``seconds`` to stage ``position`` (stages past `MAX_STAGES` are not kept)."""
        if position < MAX_STAGES:
            self._stage_seconds[position] += seconds

    def end_timed(self, now: float) -> None:
        """Counts a batch whose stages were timed; publishes the stage times and that
        count when `PUBLISH_SECONDS` have passed (``now``: ``time.perf_counter()``)."""
        self._timed += 1
        if now - self._published >= PUBLISH_SECONDS:
            base = self._base
            self.slots[base + _STAGES : base + _STAGES + MAX_STAGES] = self._stage_seconds
            self.slots[base + _TIMED] = self._timed
            self._published = now


@dataclass(frozen=True)
class ClockReading:
    """One worker's clocks, or the sum of several (``pid`` and ``booted`` then 0)."""

    pid: int
    booted: float
    busy: float
    blocked: float
    batches: int
    timed: int  # batches whose stage times are in ``stages``
    stages: tuple[float, ...]

    def __add__(self, other: ClockReading) -> ClockReading:
        return ClockReading(
            0,
            0.0,
            self.busy + other.busy,
            self.blocked + other.blocked,
            self.batches + other.batches,
            self.timed + other.timed,
            tuple(a + b for a, b in zip(self.stages, other.stages, strict=True)),
        )


ZERO = ClockReading(0, 0.0, 0.0, 0.0, 0, 0, (0.0,) * MAX_STAGES)


class WorkerClocks:
    """The parent's side of every worker's clock slot in one pool.

    Args:
        ctx: the multiprocessing context, which allocates the shared array.
        capacity: the most workers alive at once (one slot each).

    Example:
        >>> import multiprocessing
        >>> clocks = WorkerClocks(multiprocessing.get_context(), 2)
        >>> WorkerClock(clocks.array, 1).add_busy(0.5)
        >>> clocks.retire(1)
        >>> clocks.totals([]).busy
        0.5
    """

    SIZE = _STAGES + MAX_STAGES

    def __init__(self, ctx: Any, capacity: int) -> None:
        self.array = ctx.RawArray("d", self.SIZE * capacity)
        self._slots = np.frombuffer(self.array, dtype=np.float64)
        self._retired = ZERO  # the folded slots of workers that have exited

    @staticmethod
    def read_slot(slots: Any, position: int) -> ClockReading:
        """Slot ``position`` of ``slots`` (a shared array or its numpy view)."""
        view = slots if isinstance(slots, np.ndarray) else np.frombuffer(slots, dtype=np.float64)
        values = view[position * WorkerClocks.SIZE : (position + 1) * WorkerClocks.SIZE].tolist()
        return ClockReading(
            int(values[_PID]),
            values[_BOOTED],
            values[_BUSY],
            values[_BLOCKED],
            int(values[_BATCHES]),
            int(values[_TIMED]),
            tuple(values[_STAGES:]),
        )

    def reset(self, position: int) -> None:
        """Zeroes slot ``position`` for a worker about to start there."""
        self._slots[position * self.SIZE : (position + 1) * self.SIZE] = 0.0

    def retire(self, position: int) -> None:
        """Folds slot ``position`` into the totals (its worker has exited)."""
        self._retired = self._retired + self.read_slot(self._slots, position)
        self.reset(position)

    def read(self, position: int) -> ClockReading:
        """The clocks of the worker at ``position``."""
        return self.read_slot(self._slots, position)

    def totals(self, positions: list[int]) -> ClockReading:
        """Everything measured so far: exited workers and the live ``positions``."""
        total = self._retired
        for position in positions:
            total = total + self.read(position)
        return total


# The clock of this process when it is a worker (set by `run_worker`), for the stage
# timing of `StageTimed`, which runs inside ``sequence[index]``.
_THIS_WORKER: list[WorkerClock] = []


def set_this_worker(clock: WorkerClock) -> None:
    """Makes ``clock`` this process's worker clock (the worker loop, at boot)."""
    _THIS_WORKER[:] = [clock]


def this_worker() -> WorkerClock | None:
    """This process's worker clock, or ``None`` outside a worker process."""
    return _THIS_WORKER[0] if _THIS_WORKER else None


@dataclass(frozen=True)
class PoolStats:
    """A process pool's measurements at one moment (`ProcessPool.stats`).

    ``workers`` take tasks (what `ProcessPool.add_worker` and `retire_worker` set);
    ``processes`` are alive, retiring ones included; ``ready`` batches wait for the
    consumer; ``segment_bytes`` is the shared memory the pool holds in ``segments``
    segments; ``totals`` sums the
    clocks of every worker the pool has run, and ``per_worker`` reads the live ones.
    """

    workers: int
    processes: int
    ready: int
    segment_bytes: int
    segments: int
    totals: ClockReading
    per_worker: tuple[ClockReading, ...]
