"""`parallel.profile`: run a pipeline through the enqueuer and see where the time goes.

Also a command: ``python -m seqpipe.parallel.profile module:attr [--batches N]
[--workers N|auto] [--out DIR]``, where ``attr`` is a `Sequence` or `Pipeline`, or a
function that returns one.

NOTE [ How the profile measures ]
The pipeline runs in worker processes through an `OrderedEnqueuer`, as in training, with
each batch made stage by stage (`StageTimed`, through the pipeline's stage clock) and
returned with a small record of its stages: start, seconds and output bytes. The
first batch is left out (worker start-up and first-use costs); the window then runs from
its arrival to the last batch's. Per worker, busy, blocked-on-segment and idle seconds
come from the workers' own clocks (NOTE [ Worker clocks ] in
``parallel/worker_clocks.py``), and their CPU demand from ``/proc``. The consumer does
nothing but take batches, so its waits show how far the input is from keeping up with
a consumer that needs no time. The recording's own cost per batch is measured and
stated in the report (``overhead_us``).

NOTE [ Sampled recording ]
Recording a batch's stages costs a few microseconds in the worker (clock reads, marks,
a row written), which is nothing beside a batch of milliseconds but a sixth of a batch
that takes 14 us (``benchmarks/autotune.py``'s "tiny"), on cores the consumer shares.
So each worker measures that cost once, and after every recorded batch skips recording
as many batches as keeps it under `RECORDING_BUDGET` of its batch time: a 7 ms batch is
recorded every time, a 14 us one about 1 in 45. Skipped batches are computed as without
the profile and leave their row empty: stage times are averaged over the recorded ones
(``report.recorded``), and the timeline draws only those.

``seqpipe.parallel.profile`` is both this module (for ``python -m``) and the function:
importing a submodule binds it to its package's attribute, so the module is made
callable, and calling it calls `profile`.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import math
import os
import sys
import time
import types
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from .._core.checks import check_int
from ..pipeline import Pipeline
from ..pipeline.stages import nbytes, stage_list
from .autotune import AutoWorkers, Usage, demand
from .enqueuer import OrderedEnqueuer
from .profile_report import (
    RECORDING_BUDGET,
    ProfileReport,
    StageProfile,
    Timeline,
    WorkerProfile,
)
from .shm import SHM_DIR, SegmentWriter
from .stage_timing import StageTimed

MAX_SKIPPED = 1000  # batches left unrecorded after a recorded one, at most


class _Recording(StageTimed):
    """Records each batch's stages in shared memory, one row per batch of the profile:
    ``[pid, start, (stage, seconds, output bytes) per stage in the order they ran]``.

    Rows are indexed by the batch's place in the profile (epochs after the first follow
    on), so workers need no coordination and the batches themselves cross as always.
    Bytes are counted on the first batch of each process only (-1 after it, and for
    the batch plan): walking a batch's arrays costs more than the clocks.
    """

    def __init__(self, sequence: Any, capacity: int) -> None:
        super().__init__(sequence)
        self.plan_stage = sequence.num_source_stages if isinstance(sequence, Pipeline) else -1
        self.first_epoch = int(getattr(sequence, "epoch", 0) or 0)
        self.length = len(sequence)  # batches an epoch: where the next epoch's rows start
        self.capacity = capacity
        self.width = 2 + 3 * len(self.names)
        self._memory = SharedMemory(create=True, size=8 * capacity * self.width)
        self.segment = self._memory.name
        self._flat: np.ndarray | None = None
        self._pid = 0
        self._cost: float | None = None  # seconds a recording costs in this process
        self._skip = 0  # batches still to compute unrecorded (NOTE [ Sampled recording ])
        self._positions: list[int] = []
        self.sizing = True
        self.rows()[:] = -1.0  # stages a batch does not run stay -1

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._flat, self._pid, self._cost, self._skip = None, 0, None, 0

    def get_batch(self, index: int, epoch: int, out: Any = None) -> Any:
        """The batch, its stages recorded unless skipped (NOTE [ Sampled recording ])."""
        if self._skip:
            self._skip -= 1
            return self.timed_sequence.get_batch(index, epoch, out)
        started = time.perf_counter()
        batch = super().get_batch(index, epoch, out)
        spent = time.perf_counter() - started
        if self._cost is None:
            self._cost = _recording_cost(self, batch, self._positions)
        work = max(spent - self._cost, 1e-9)
        wanted = math.ceil(self._cost / (RECORDING_BUDGET * work)) - 1
        self._skip = min(MAX_SKIPPED, max(0, wanted))
        return batch

    def rows(self) -> np.ndarray:
        """The records, ``(capacity, width)``: in the parent the memory it created, in a
        worker a mapping of it."""
        return self._map().reshape(self.capacity, self.width)

    def _map(self) -> np.ndarray:
        if self._flat is None:
            size = self.capacity * self.width
            memory = self.__dict__.get("_memory")
            if memory is not None:
                self._flat = np.ndarray(size, np.float64, buffer=memory.buf)
            else:
                self._flat = SegmentWriter(1, SHM_DIR).view(self.segment, 8 * size).view(np.float64)
            self._pid = os.getpid()  # once: getpid is a system call
        return self._flat

    def close(self) -> None:
        """Frees the records (the parent, after reading them)."""
        self._flat = None
        self._memory.close()
        self._memory.unlink()

    def _begin(self, index: int, epoch: int) -> list[float]:
        # [row, start], the row replaced by the pid when written (`_end`).
        return [(epoch - self.first_epoch) * self.length + index, time.monotonic()]

    def _mark(self, marks: list[float], position: int, seconds: float, output: Any) -> None:
        sized = self.sizing and position != self.plan_stage
        marks += (position, seconds, nbytes(output) if sized else -1)

    def _end(self, marks: list[float], batch: Any, ended: float) -> Any:
        flat = self._flat if self._flat is not None else self._map()
        if self._cost is None:  # the stages a batch runs, for measuring the cost
            self._positions = [int(p) for p in marks[2::3]]
        row = int(marks[0])
        if row < self.capacity:
            marks[0] = self._pid
            start = row * self.width
            flat[start : start + len(marks)] = marks
        self.sizing = False
        return batch


def _recording_cost(recording: _Recording, batch: Any, positions: list[int]) -> float:
    # Seconds one batch's recording costs a worker: its clock reads, marks and a row
    # (written to a scratch row: the real ones belong to the batches).
    reps = 300
    scratch = np.empty(recording.width)
    recording.sizing = False  # sizes are taken once a process; the steady cost is wanted
    started = time.perf_counter()
    for _ in range(reps):
        marks = recording._begin(0, recording.first_epoch)
        last = time.perf_counter()
        for position in positions:
            now = time.perf_counter()
            recording._mark(marks, position, now - last, batch)
            last = now
        scratch[1 : len(marks)] = marks[1:]
    return (time.perf_counter() - started) / reps


def profile(
    seq: Any,
    batches: int = 200,
    workers: int | str | AutoWorkers | None = None,
    out: str | None = None,
    *,
    max_queue_size: int = 10,
) -> ProfileReport:
    """Runs ``seq`` through the enqueuer's worker processes and reports where time goes.

    See NOTE [ How the profile measures ]. A `Pipeline` is profiled on a copy (its
    epoch counter is not advanced) for as many epochs as ``batches`` takes; another
    `Sequence` for at most one epoch, without ``on_epoch_end``.

    Args:
        seq: a `Pipeline` or `Sequence`.
        batches: batches to measure (one more runs first, unmeasured).
        workers: worker processes, or ``"auto"`` / `AutoWorkers` (the report then lists
            the decisions); default: one per CPU of this process's affinity.
        out: a directory to write ``profile.png``, ``profile.html`` and
            ``profile.txt`` to.
        max_queue_size: batches computed ahead, as for `OrderedEnqueuer.start`.

    Returns:
        A `ProfileReport`: ``.bottleneck``, ``str(report)``, ``.plot(path)``,
        ``.to_html()``.

    Raises:
        ValueError: for ``batches < 1`` or a bad ``workers``.

    Example:
        >>> from seqpipe.pipeline import Pipeline
        >>> report = profile(Pipeline(np.zeros((4096, 8)), 32), batches=50)  # doctest: +SKIP
        >>> print(report)                                                    # doctest: +SKIP
    """
    batches = check_int("batches", batches, 1)
    cpus = AutoWorkers().cpus()
    setting = cpus if workers is None else workers
    repeats = isinstance(seq, Pipeline)
    target = copy.copy(seq) if repeats else seq
    count = batches + 1 if repeats else min(batches + 1, len(target))
    recording = _Recording(target, count)
    try:
        enqueuer = OrderedEnqueuer(recording, use_multiprocessing=True)
        launched = time.monotonic()
        enqueuer.start(workers=setting, max_queue_size=max_queue_size)
        try:
            run = _Run(enqueuer, count)
            decisions = [] if enqueuer.monitor is None else enqueuer.monitor.decisions
        finally:
            enqueuer.stop()
        records = recording.rows().copy()
        # Rows of skipped batches stay empty (NOTE [ Sampled recording ]).
        recorded = records[1:][records[1:, 0] >= 0]
        last = recorded[-1] if len(recorded) else records[0]
        positions = [int(p) for p in _marks(last)[:, 0]]
        overhead = _recording_cost(recording, run.last_batch, positions)
    finally:
        recording.close()
    timeline_stages: dict[int, list[tuple[int, float, float]]] = {}
    for record in recorded:
        start, segments = record[1], timeline_stages.setdefault(int(record[0]), [])
        for position, seconds, _ in _marks(record).tolist():
            segments.append((int(position), start, seconds))
            start += seconds
    report = ProfileReport(
        stages=_stage_profiles(target, records),
        workers=run.workers,
        worker_setting=str(setting),
        batches=count - 1,
        seconds=run.seconds,
        startup_s=run.first - launched,
        consumer_wait_s=sum(seconds for _, seconds in run.waits),
        cpu_demand=run.cpu_demand,
        cpu_budget=cpus if not isinstance(setting, AutoWorkers) else setting.cpus(),
        max_queue_size=max_queue_size,
        overhead_us=1e6 * overhead,
        recorded=len(recorded),
        timeline=Timeline(run.first, timeline_stages, run.waits),
        decisions=decisions,
    )
    if out is not None:
        os.makedirs(out, exist_ok=True)
        report.plot(os.path.join(out, "profile.png"))
        report.to_html(os.path.join(out, "profile.html"))
        with open(os.path.join(out, "profile.txt"), "w", encoding="utf-8") as f:
            f.write(str(report) + "\n")
    return report


class _Run:
    """Takes ``count`` batches from a started enqueuer, timing the consumer's waits and
    reading the workers' clocks when the first batch arrives and after the last."""

    def __init__(self, enqueuer: OrderedEnqueuer, count: int) -> None:
        self.waits: list[tuple[float, float]] = []
        usage = Usage()
        batches = enqueuer.iter_epoch()
        taken = 0
        while taken < count:
            asked = time.monotonic()
            try:
                self.last_batch = next(batches)
            except StopIteration:  # a Pipeline's epoch ended: the next one follows
                batches = enqueuer.iter_epoch()
                continue
            now = time.monotonic()
            if not taken:
                self.first = now
                before = enqueuer.stats()
                usage.read([c.pid for c in before.per_worker])
            else:
                self.waits.append((asked, now - asked))
            taken += 1
        self.seconds = max(now - self.first, 1e-9)
        after = enqueuer.stats()
        cpu, _ = usage.read([c.pid for c in after.per_worker])
        start = {c.pid: c for c in before.per_worker}
        self.workers = []
        busy = {}
        for clock in after.per_worker:
            old = start.get(clock.pid)
            busy[clock.pid] = clock.busy - (old.busy if old else 0.0)
            alive = now - max(self.first, clock.booted)
            self.workers.append(
                WorkerProfile(
                    pid=clock.pid,
                    busy_s=busy[clock.pid],
                    blocked_s=clock.blocked - (old.blocked if old else 0.0),
                    idle_s=max(0.0, alive - busy[clock.pid]),
                    batches=clock.batches - (old.batches if old else 0),
                )
            )
        self.cpu_demand = demand(cpu, busy)


def _marks(record: np.ndarray) -> np.ndarray:
    # A record's (stage, seconds, bytes) rows, without the stages the batch did not run.
    marks = record[2:].reshape(-1, 3)
    return marks[marks[:, 0] >= 0]


def _stage_profiles(target: Any, records: np.ndarray) -> list[StageProfile]:
    # The first record (the unmeasured batch) gives sizes but no times; skipped batches'
    # rows are empty (NOTE [ Sampled recording ]) and count for nothing.
    listed = stage_list(target)
    seconds = np.zeros(len(listed))
    out_bytes: list[int | None] = [None] * len(listed)
    for i, record in enumerate(records):
        for position, spent, size in _marks(record).tolist():
            seconds[int(position)] += spent if i else 0.0
            if size >= 0:
                out_bytes[int(position)] = int(size)
    total = float(seconds.sum()) or 1.0
    plan = target.num_source_stages if isinstance(target, Pipeline) else -1
    if plan >= 0 and all(b is not None for b in out_bytes[:plan]):
        out_bytes[plan] = sum(out_bytes[:plan])  # the batch the sources' parts make
    profiles = []
    for i, stage in enumerate(listed):
        previous = out_bytes[i - 1] if stage.kind in ("transform", "shard") else None
        profiles.append(
            StageProfile(
                name=stage.name,
                kind=stage.kind,
                random=stage.random,
                ms_per_batch=1e3 * seconds[i] / max(1, int((records[1:, 0] >= 0).sum())),
                share=seconds[i] / total,
                bytes_in=previous,
                bytes_out=out_bytes[i],
            )
        )
    return profiles


def _load(target: str) -> Any:
    # ``module:attr`` (attr may be dotted); a function is called for the sequence.
    module_name, _, attr = target.partition(":")
    if not attr:
        raise SystemExit(f"expected module:attr, e.g. my_data:train_seq. Received: {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if callable(obj) and not hasattr(obj, "__getitem__"):
        obj = obj()
    return obj


def main(argv: list[str] | None = None) -> int:
    """The command line: profiles ``module:attr`` and prints the report.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m seqpipe.parallel.profile",
        description="Profile a seqpipe pipeline through the enqueuer's worker processes.",
    )
    parser.add_argument(
        "target", help="module:attr, a Sequence/Pipeline or a function returning one"
    )
    parser.add_argument("--batches", type=int, default=200, help="batches to measure (200)")
    parser.add_argument("--workers", default=None, help="an int, or 'auto' (default: one per CPU)")
    parser.add_argument("--out", default=None, help="directory for profile.png/.html/.txt")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    workers = args.workers
    if workers is not None and workers != "auto":
        workers = int(workers)
    report = profile(_load(args.target), args.batches, workers, args.out)
    print(report)
    if args.out:
        print(f"\nwrote {os.path.join(args.out, 'profile.html')} and profile.png, profile.txt")
    return 0


class _CallableModule(types.ModuleType):
    """This module, callable as `profile` (see the module's docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> ProfileReport:
        return profile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
