"""``workers="auto"``: the enqueuer's worker count, tuned while it runs.

NOTE [ Tuning the worker count ]
The enqueuer starts one worker. A few times a second (`InputMonitor`'s thread) the
tuner reads what was measured over a window of at least `MIN_WINDOW_SECONDS` and
`MIN_WINDOW_BATCHES` batches, all workers started and, after a change, the batches
already handed out delivered (they arrive at the old count's pace, in order): the
batches delivered per second, the
share of the window the consumer waited, the workers' busy seconds (from their clocks,
NOTE [ Worker clocks ] in ``parallel/worker_clocks.py``), and from ``/proc`` their CPU
demand and private memory. Then:

- it grows while the consumer waits (over `WAIT_TO_GROW` of the window) and
  throughput rises: after each growth it compares the next window's throughput with the
  last one's, and undoes a growth that gained under `MIN_GAIN`. The count before it is
  then a ceiling for `RETRY_SECONDS`, twice as long after each failed try of the same
  count, up to `MAX_RETRY_SECONDS`: a try spoiled by start-up (the first segments, the
  first epoch) is soon made again, and a count that never pays is rarely tried. A
  growth that scaled nearly linearly is followed by one twice as large, so an I/O-bound
  pipeline reaches its count in a few windows;
- it shrinks when the consumer hardly waits (under `WAIT_TO_SHRINK`) and one worker
  fewer could do the work at most `BUSY_TO_SHRINK` busy, unless that count just paid;
- it stays within ``cpu_budget``: workers that want a CPU (running or runnable) for
  most of their busy time count one CPU each; I/O-bound workers, which want one for
  less than half of it, count for what they use, so more of them fit (waiting on
  storage costs no CPU). And within ``ram_budget_mb``: shared-memory segments plus each
  worker's private memory, the next worker estimated as the largest one now;
- it never exceeds ``max_queue_size`` workers: no more batches are in flight.

Adding and retiring workers is the pool's own machinery (`ProcessPool.add_worker`,
`retire_worker`): a retiring worker finishes the tasks it holds, so every batch is still
delivered exactly once and in order. Each decision is logged at debug level on the
``seqpipe.parallel.autotune`` logger, with its reason, and kept for the profile report.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from .process_usage import cpu_demand_seconds, private_rss_bytes

logger = logging.getLogger(__name__)

MIN_WINDOW_SECONDS = 0.3
MIN_WINDOW_BATCHES = 8
MAX_WINDOW_SECONDS = 3.0
WAIT_TO_GROW = 0.05
WAIT_TO_SHRINK = 0.01
MIN_GAIN = 0.05
BUSY_TO_SHRINK = 0.7
RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0
# Below this share of their busy time wanting a CPU, workers count as I/O-bound.
IO_BOUND_DEMAND = 0.5


@dataclass(frozen=True)
class AutoWorkers:
    """``workers=AutoWorkers(...)``: tune the worker count within budgets.

    ``workers="auto"`` is ``AutoWorkers()``. Every adapter passes its ``workers``
    argument to the enqueuer unchanged, so this value carries the budgets through
    ``as_keras``, ``as_tf_dataset`` and ``MultiGPUTrainer.fit`` alike.

    Args:
        cpu_budget: CPUs the workers may keep busy (default: this process's CPU
            affinity, ``len(os.sched_getaffinity(0))``); I/O-bound workers count for the
            CPU they use (NOTE [ Tuning the worker count ]).
        ram_budget_mb: megabytes for shared-memory segments plus the workers' private
            memory (default: no limit).

    Raises:
        ValueError: for a budget that is not a positive number.

    Example:
        >>> AutoWorkers(cpu_budget=4).cpu_budget
        4
    """

    cpu_budget: int | None = None
    ram_budget_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_budget", "ram_budget_mb"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{name} must be a number > 0 or None. Received: {name}={value!r}")

    def cpus(self) -> int:
        """The CPU budget, the affinity count when not given."""
        if self.cpu_budget is not None:
            return int(self.cpu_budget)
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1


# A worker count: an int, ``"auto"`` or `AutoWorkers` (what adapters pass on unchanged).
Workers = int | str | AutoWorkers


def auto_workers(
    workers: Any, cpu_budget: int | None = None, ram_budget_mb: float | None = None
) -> AutoWorkers | None:
    """The `AutoWorkers` that ``workers`` (with `OrderedEnqueuer.start`'s budgets) asks
    for, or ``None`` for a fixed count.

    Raises:
        ValueError: for budgets given with a fixed worker count, or both ways at once.

    Example:
        >>> auto_workers("auto", cpu_budget=2)
        AutoWorkers(cpu_budget=2, ram_budget_mb=None)
        >>> auto_workers(4) is None
        True
    """
    budgets = cpu_budget is not None or ram_budget_mb is not None
    if isinstance(workers, AutoWorkers):
        if budgets:
            raise ValueError(
                "give the budgets in AutoWorkers(...) or to start(), not both. "
                f"Received: workers={workers!r}, cpu_budget={cpu_budget}, "
                f"ram_budget_mb={ram_budget_mb}"
            )
        return workers
    if workers == "auto":
        return AutoWorkers(cpu_budget, ram_budget_mb)
    if budgets:
        raise ValueError(
            f"cpu_budget and ram_budget_mb bound workers='auto'; a fixed count ignores "
            f"them. Received: workers={workers!r}"
        )
    return None


@dataclass(frozen=True)
class Decision:
    """One change of the worker count: when (seconds since the enqueuer started), from
    how many workers to how many, and why."""

    seconds: float
    before: int
    after: int
    reason: str

    def __str__(self) -> str:
        return f"{self.seconds:6.1f} s: {self.before} -> {self.after} workers: {self.reason}"


@dataclass(frozen=True)
class Window:
    """What one tuning window measured (see NOTE [ Tuning the worker count ])."""

    seconds: float
    workers: int
    batches_per_second: float
    wait_fraction: float
    busy_workers: float  # busy worker-seconds per second
    cpu_demand: float  # CPU wanted per busy second, 0..1
    worker_bytes: int  # the largest worker's private memory
    segment_bytes: int
    segment_growth: int  # segment bytes one more batch in flight may add


class AutoTuner:
    """Decides the worker count from one window to the next.

    Args:
        option: the budgets.
        max_workers: the most workers (the enqueuer's ``max_queue_size``).

    Example:
        >>> tuner = AutoTuner(AutoWorkers(cpu_budget=2), max_workers=10)
        >>> waiting = Window(0.5, 1, 50.0, 0.9, 1.0, 1.0, 30 << 20, 0, 0)
        >>> tuner.decide(waiting, now=1.0).after
        2
    """

    def __init__(self, option: AutoWorkers, max_workers: int) -> None:
        self.cpu_budget = option.cpus()
        self.ram_budget = None if option.ram_budget_mb is None else option.ram_budget_mb * 2**20
        self.max_workers = max(1, max_workers)
        self._rates: dict[int, float] = {}  # the last throughput at each count
        self._grown_from: int | None = None  # the count before an unjudged growth
        self._step = 1
        self._ceiling: tuple[int, float] | None = None  # (count, until)
        # A count whose growth did not pay -> how long its last ceiling held.
        self._backoff: dict[int, float] = {}
        self._floor: tuple[int, float] | None = None
        self._refused = ""  # the last reason not to grow, logged once

    def limit(self, window: Window) -> tuple[int, str]:
        """The most workers the budgets allow now, and which budget sets it."""
        limit, why = self.max_workers, f"max_queue_size={self.max_workers}"
        cpus = self.cpu_budget
        if window.cpu_demand >= IO_BOUND_DEMAND:
            by_cpu = cpus
        else:
            by_cpu = math.floor(cpus / max(window.cpu_demand, 1 / self.max_workers))
        if by_cpu < limit:
            wants = f"each worker wants a CPU {window.cpu_demand:.0%} of its busy time"
            limit, why = by_cpu, f"cpu_budget={cpus} ({wants})"
        if self.ram_budget is not None:
            fits = max(1, limit)
            while fits > 1 and self.ram_needed(window, fits) > self.ram_budget:
                fits -= 1
            if fits < limit:
                need = self.ram_needed(window, fits + 1)
                limit, why = (
                    fits,
                    (
                        f"ram_budget_mb={self.ram_budget / 2**20:.0f}: {fits + 1} workers would "
                        f"need ~{need / 2**20:.0f} MB ({window.worker_bytes / 2**20:.0f} MB per "
                        f"worker plus {window.segment_bytes / 2**20:.0f} MB of segments)"
                    ),
                )
        return max(1, limit), why

    @staticmethod
    def ram_needed(window: Window, workers: int) -> float:
        """Bytes ``workers`` workers would hold: private memory and segments."""
        more = max(0, workers - window.workers)
        return workers * window.worker_bytes + window.segment_bytes + more * window.segment_growth

    def decide(self, window: Window, now: float) -> Decision | None:
        """The change this window calls for (``seconds`` is ``now``), or ``None``."""
        n = window.workers
        rate = window.batches_per_second
        self._rates[n] = rate
        grown_from, self._grown_from = self._grown_from, None
        if grown_from is not None and grown_from in self._rates:
            before = self._rates[grown_from]
            if rate < before * (1 + MIN_GAIN):
                wait = min(2 * self._backoff.get(grown_from, RETRY_SECONDS / 2), MAX_RETRY_SECONDS)
                self._backoff[grown_from] = wait
                self._ceiling = (grown_from, now + wait)
                self._step = 1
                return Decision(
                    now,
                    n,
                    grown_from,
                    f"throughput did not rise enough with {n} workers "
                    f"({before:.1f} -> {rate:.1f} batches/s)",
                )
            linear = (n - grown_from) * before / grown_from
            self._step = 2 * (n - grown_from) if rate - before >= 0.7 * linear else 1
            self._floor = (n, now + RETRY_SECONDS)
        limit, why = self.limit(window)
        if self._ceiling is not None and now < self._ceiling[1] and self._ceiling[0] < limit:
            limit, why = self._ceiling[0], "a larger count did not raise throughput"
        if n > limit:
            return Decision(now, n, limit, f"over the budget: {why}")
        waited = f"the consumer waited {window.wait_fraction:.0%} of {window.seconds:.1f} s"
        if window.wait_fraction > WAIT_TO_GROW:
            if n >= limit:
                self._log_refusal(f"stays at {n} workers although {waited}: {why}")
                return None
            self._grown_from = n
            after = min(limit, n + self._step)
            return Decision(now, n, after, f"{waited} at {rate:.1f} batches/s")
        floor = self._floor[0] if self._floor is not None and now < self._floor[1] else 1
        if (
            window.wait_fraction < WAIT_TO_SHRINK
            and n > floor
            and window.busy_workers < (n - 1) * BUSY_TO_SHRINK
        ):
            return Decision(
                now,
                n,
                n - 1,
                f"workers idle: {window.busy_workers:.1f} of {n} busy on average, {waited}",
            )
        return None

    def _log_refusal(self, reason: str) -> None:
        if reason.split(":")[1:] != self._refused.split(":")[1:]:
            logger.debug("workers='auto': %s", reason)
        self._refused = reason


class Usage:
    """Reads the workers' CPU demand and private memory from ``/proc``, per window."""

    def __init__(self) -> None:
        self._cpu: dict[int, float] = {}  # pid -> demand seconds at the last reading

    def read(self, pids: list[int]) -> tuple[dict[int, float], int]:
        """``({pid: CPU-demand seconds since the last read}, largest private bytes)``;
        a pid seen for the first time reports nothing yet."""
        delta: dict[int, float] = {}
        largest = 0
        seen: dict[int, float] = {}
        for pid in pids:
            cpu = cpu_demand_seconds(pid)
            rss = private_rss_bytes(pid)
            if cpu is None or rss is None:
                continue
            seen[pid] = cpu
            largest = max(largest, rss)
            if pid in self._cpu:
                delta[pid] = cpu - self._cpu[pid]
        self._cpu = seen
        return delta, largest


def demand(cpu: dict[int, float], busy: dict[int, float]) -> float:
    """CPU wanted per busy second over the pids measured both ways (1.0 when unknown:
    a worker is taken as CPU-bound until measured otherwise)."""
    pids = [pid for pid in cpu if busy.get(pid, 0.0) > 0.0]
    busy_total = sum(busy[pid] for pid in pids)
    if busy_total < 0.05:
        return 1.0
    return min(1.0, sum(cpu[pid] for pid in pids) / busy_total)


class Tuning:
    """Runs an `AutoTuner` on a `ProcessPool`: builds each window from the pool's stats
    and the monitor's readings, applies and logs each decision.

    Args:
        pool: the enqueuer's process pool.
        tuner: the decisions.
        started: ``time.monotonic()`` when the enqueuer started (decisions count from it).
        backlog: batches in flight at most (``max_queue_size``): after a change, the
            batches already handed to workers are delivered before a window starts, since
            they arrive at the pace of the count that took them.
    """

    def __init__(self, pool: Any, tuner: AutoTuner, started: float, backlog: int) -> None:
        self.pool = pool
        self.tuner = tuner
        self.started = started
        self.backlog = backlog
        self._measure_from = 0  # batches delivered when windows may start again
        self.decisions: list[Decision] = []
        self._usage = Usage()
        self._start: tuple[Any, dict[int, float]] | None = None  # (reading, busy by pid)

    def tick(self, reading: Any) -> Decision | None:
        """Called by the monitor's thread with its latest `InputReading`."""
        stats = reading.pool
        settled = stats.processes == stats.workers and all(c.booted > 0 for c in stats.per_worker)
        busy = {c.pid: c.busy for c in stats.per_worker}
        if not settled or reading.delivered < self._measure_from:
            self._start = None  # a change is under way: measure after it
            return None
        if self._start is None:
            self._usage.read(list(busy))
            self._start = (reading, busy)
            return None
        start, busy_before = self._start
        seconds = reading.time - start.time
        batches = reading.delivered - start.delivered
        least = max(MIN_WINDOW_BATCHES, 2 * stats.workers)
        enough = seconds >= MIN_WINDOW_SECONDS and batches >= least
        if not (enough or seconds >= MAX_WINDOW_SECONDS):
            return None
        cpu, worker_bytes = self._usage.read(list(busy))
        busy_delta = {pid: b - busy_before.get(pid, 0.0) for pid, b in busy.items()}
        window = Window(
            seconds=seconds,
            workers=stats.workers,
            batches_per_second=batches / seconds,
            wait_fraction=min(1.0, (reading.waited - start.waited) / seconds),
            busy_workers=sum(busy_delta.values()) / seconds,
            cpu_demand=demand(cpu, busy_delta),
            worker_bytes=worker_bytes,
            segment_bytes=stats.segment_bytes,
            segment_growth=stats.segment_bytes // max(1, stats.segments),
        )
        self._start = (reading, busy)
        decision = self.tuner.decide(window, reading.time - self.started)
        if decision is not None:
            self.apply(decision)
            self._measure_from = reading.delivered + self.backlog
        return decision

    def apply(self, decision: Decision) -> None:
        """Asks the pool for the decided count, logs and keeps the decision."""
        pool = self.pool
        change = pool.add_worker if decision.after > decision.before else pool.retire_worker
        for _ in range(abs(decision.after - decision.before)):
            change()
        self.decisions.append(decision)
        self._start = None
        logger.debug("workers='auto': %s", decision)
