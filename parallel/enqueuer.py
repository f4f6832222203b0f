"""`OrderedEnqueuer`: every batch of every epoch exactly once, in order, from workers.

NOTE [ Elastic resume ]
A `Pipeline`'s shards consume each epoch's one global order together, as a prefix, a
step at a time (NOTE [ Sharding and padding ] in ``pipeline/plan.py``). So the state of
an enqueuer over a pipeline is the epoch and the global position ``P``: the samples of
the epoch's order consumed by all shards together (the same number on every shard, as
shards run in lockstep), plus the pipeline's identity (sample count, shuffle, seed, a
hash of the sources; `Pipeline.identity`), and nothing of the topology. Any shard's
state resumes an enqueuer over the same pipeline with another shard count, shard index,
batch size, worker count or executor: the pipeline's steps then begin at ``P``
(`Pipeline.set_epoch(epoch, start=P)`), so the new shards together deliver exactly the
positions ``[P, end)``, every sample not yet delivered, once; the epochs after it follow
the new topology; resuming again composes. ``shuffle='batch'`` orders blocks of the batch
size, so a resumed epoch keeps the block size it began with (the state's ``block``).
Shards must run in lockstep, as training does; if a loop lets one shard run ahead, the
states of the shards differ, and resuming from one of them repeats what shards ahead of
it delivered, or skips what shards behind it did not: pass the state of the slowest
shard to repeat rather than skip. An enqueuer that shuffles batch order itself
(``shuffle=True`` here) or runs over another kind of sequence saves ``next_index``
instead, a position in its own batches, which resumes only the same topology.
"""

from __future__ import annotations

import atexit
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._core.checks import check_int
from ..pipeline import EpochPlan, Pipeline
from ..pipeline.stages import stage_list
from .autotune import AutoTuner, AutoWorkers, Tuning, auto_workers
from .executors import InlineExecutor, ProcessExecutor, ThreadExecutor
from .input_metrics import InputMonitor, thread_stats
from .pool import shutdown_all
from .stage_timing import StageTimed
from .worker_clocks import PoolStats

atexit.register(shutdown_all)


class OrderedEnqueuer:
    """Builds an enqueuer from a Sequence and delivers its batches exactly once, in order.

    Batches are computed ahead by workers (processes, threads, or none) and delivered in
    epoch order; ``on_epoch_end`` runs once per epoch in this process before workers
    start the next epoch. With processes, large arrays cross through shared memory; a
    worker that dies is replaced and its batches recomputed.

    Args:
        sequence: a `pipeline.Sequence` (a `Pipeline` too) or any object with
            ``__len__``, ``__getitem__`` and, optionally, ``on_epoch_end``.
        use_multiprocessing: compute batches in worker processes (else threads).
        shuffle: visit batches in a new order every epoch, a pure function of
            ``(seed, epoch)``.
        seed: seed for ``shuffle`` (default 0).
        initial_state: a dict from `state` to resume from.
        max_retries: times a batch is recomputed on a fresh worker after its worker
            died (or overran ``batch_timeout``): a batch may cost ``max_retries + 1``
            workers before `WorkerCrashed` (or `BatchTimeout`) is raised. Workers that
            die while starting are restarted as often before `WorkerStartFailed`.
        start_method: ``'forkserver'`` (default), ``'spawn'`` or ``'fork'``; see
            NOTE [ Start method ] in ``parallel/pool.py``.
        batch_timeout: seconds one batch may take in a worker process; a batch taking
            longer is killed with its worker and recomputed on a fresh one, and after
            ``max_retries + 1`` timeouts `BatchTimeout` is raised. ``None`` (default) never
            kills, but warns naming the batch and the worker's pid when one batch has
            computed for 60 s. Needs ``use_multiprocessing=True``.
        monitor: measure the input while it runs (``enqueuer.monitor``, an
            `InputMonitor`): the consumer's wait, throughput, queue depth and each
            stage's time in the workers, as TensorBoard's ``input/...`` scalars show
            them. ``workers="auto"`` keeps a monitor without the stage times.

    Raises:
        ValueError: if ``initial_state`` is not a state, or does not belong to this
            sequence and settings (naming what differs), or is past the epoch's end;
            or ``max_retries`` is not an int >= 0, or ``batch_timeout`` is not a
            positive number.

    Example:
        >>> import numpy as np
        >>> from seqpipe.pipeline import Pipeline
        >>> enqueuer = OrderedEnqueuer(Pipeline(np.arange(10), batch_size=4))
        >>> enqueuer.start(workers=0)
        >>> [b.tolist() for b in enqueuer.iter_epoch()]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        >>> enqueuer.state()["epoch"]
        1
        >>> enqueuer.stop()
    """

    def __init__(
        self,
        sequence: Any,
        use_multiprocessing: bool = False,
        shuffle: bool = False,
        *,
        seed: int = 0,
        initial_state: dict[str, Any] | None = None,
        max_retries: int = 3,
        start_method: str | None = None,
        batch_timeout: float | None = None,
        monitor: bool = False,
    ) -> None:
        if batch_timeout is not None and (
            isinstance(batch_timeout, bool)
            or not isinstance(batch_timeout, int | float)
            or not batch_timeout > 0
        ):
            raise ValueError(
                f"batch_timeout must be a number of seconds > 0, or None. "
                f"Received: batch_timeout={batch_timeout!r}"
            )
        self.sequence = sequence
        self.use_multiprocessing = use_multiprocessing
        if not isinstance(shuffle, bool | np.bool_):
            raise ValueError(
                f"shuffle must be True or False (the batch order). Received: shuffle={shuffle!r}"
            )
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.max_retries = check_int("max_retries", max_retries, 0)
        self.start_method = start_method
        self.batch_timeout = batch_timeout
        self._executor: Any = None
        self.measure = monitor  # whether `start` keeps an InputMonitor with stage times
        self._computed: Any = sequence  # what workers compute: StageTimed when measured
        self.monitor: InputMonitor | None = None
        self._window: deque[tuple[int, Any]] = deque()  # (position, handle), in order
        self._epoch = int(getattr(sequence, "epoch", 0) or 0)
        # Invariant: positions [0, _next) of the current epoch have been delivered.
        self._next = 0
        self._shipped_epoch: int | None = None
        if initial_state is not None:
            self._restore(initial_state)

    # -- lifecycle ------------------------------------------------------------------

    def start(
        self,
        workers: int | str | AutoWorkers = 1,
        max_queue_size: int = 10,
        *,
        cpu_budget: int | None = None,
        ram_budget_mb: float | None = None,
    ) -> None:
        """Starts the workers.

        Args:
            workers: number of workers; 0 computes batches in the consumer's thread.
                ``"auto"`` (or `AutoWorkers`) starts one worker process and tunes the
                count while batches flow (NOTE [ Tuning the worker count ] in
                ``parallel/autotune.py``); `worker_count` says how many run now.
            max_queue_size: most batches computed ahead of the consumer (and, with
                ``"auto"``, the most workers).
            cpu_budget: with ``"auto"``: CPUs the workers may keep busy (default: this
                process's CPU affinity count; I/O-bound workers count for what they use).
            ram_budget_mb: with ``"auto"``: megabytes for shared-memory segments plus the
                workers' private memory (default: no limit).

        Raises:
            ValueError: for negative ``workers`` or ``max_queue_size < 1``, a
                ``batch_timeout`` without worker processes (threads cannot be killed),
                ``"auto"`` without ``use_multiprocessing=True``, or budgets without
                ``"auto"``.

        Example:
            >>> import numpy as np
            >>> from seqpipe.pipeline import Pipeline
            >>> enqueuer = OrderedEnqueuer(Pipeline(np.arange(10), 2), use_multiprocessing=True)
            >>> enqueuer.start(workers="auto", cpu_budget=2)
            >>> len(list(enqueuer.iter_epoch())), enqueuer.worker_count >= 1
            (5, True)
            >>> enqueuer.stop()
        """
        auto = auto_workers(workers, cpu_budget, ram_budget_mb)
        if auto is not None and not self.use_multiprocessing:
            raise ValueError(
                f"workers={workers!r} tunes worker processes: pass use_multiprocessing=True "
                f"(threads cannot be retired)"
            )
        count = 1 if auto is not None else workers
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"workers must be an int >= 0 or 'auto'; use workers=0 to compute batches "
                f"in this process. Received: workers={workers!r}"
            )
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1. Received: {max_queue_size}")
        if self.batch_timeout is not None and not (self.use_multiprocessing and count):
            raise ValueError(
                f"batch_timeout={self.batch_timeout} needs worker processes "
                f"(use_multiprocessing=True, workers >= 1): a thread cannot be killed. "
                f"Received: use_multiprocessing={self.use_multiprocessing}, workers={workers}"
            )
        if self.is_running():
            raise RuntimeError("the enqueuer is already running; stop() it first")
        if count == 0:
            self._executor = InlineExecutor()
        elif self.use_multiprocessing:
            self._executor = ProcessExecutor(
                count,
                self.start_method,
                self.max_retries,
                max_queue_size,
                self.batch_timeout,
                max_workers=max_queue_size if auto is not None else None,
            )
        else:
            self._executor = ThreadExecutor(count)
        self.workers = workers
        self.max_queue_size = max_queue_size
        self._shipped_epoch = None
        self._window.clear()
        self._start_monitor(auto)

    def _start_monitor(self, auto: AutoWorkers | None) -> None:
        # Stages are timed where they run, except a plain Sequence's one stage in worker
        # processes: their clocks time it already (parallel/input_metrics.py).
        measure = self.measure
        processes = isinstance(self._executor, ProcessExecutor)
        one_stage = processes and not isinstance(self.sequence, Pipeline)
        timed = StageTimed(self.sequence) if measure and not one_stage else None
        self._computed = self.sequence if timed is None else timed
        if not measure and auto is None:
            return
        names = [] if not measure else timed.names if timed else [stage_list(self.sequence)[0].name]
        tuning = None
        if auto is not None:
            tuner = AutoTuner(auto, max_workers=self.max_queue_size)
            tuning = Tuning(self._executor.pool, tuner, time.monotonic(), self.max_queue_size)
        self.monitor = InputMonitor(self.stats, names, timed, tuning)

    def stats(self) -> PoolStats:
        """What the workers measured so far: the pool's `PoolStats` (for threads, or the
        consumer's thread, a `PoolStats` without clocks or shared memory)."""
        pool = getattr(self._executor, "pool", None)
        if pool is not None:
            return pool.stats()
        workers = self.workers if isinstance(self.workers, int) else 0
        return thread_stats(workers, self._window)

    @property
    def worker_count(self) -> int:
        """Worker processes or threads alive now (0 when stopped or computing in the
        consumer's thread); with ``workers="auto"`` it changes as the count is tuned."""
        return self.stats().processes if self.is_running() else 0

    def is_running(self) -> bool:
        """Whether `start` was called and `stop` was not."""
        return self._executor is not None

    def stop(self, timeout: float | None = None) -> None:
        """Stops the workers and frees shared memory; batches already delivered stay valid.

        Bounded: workers still running after ``timeout`` seconds in all (5 by default)
        are killed, and a Ctrl-C while waiting kills them at once.

        Args:
            timeout: seconds to wait for the workers to exit before killing them.
        """
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            monitor.close()
        executor, self._executor = self._executor, None
        for _, future in self._window:
            future.cancel()
        self._window.clear()
        if executor is not None:
            executor.shutdown(timeout)

    def __enter__(self) -> OrderedEnqueuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- delivery ---------------------------------------------------------------------

    def get(self) -> Iterator[Any]:
        """Yields batches forever, epoch after epoch (the Keras 2 interface).

        Raises:
            RuntimeError: if the enqueuer is not started.
            WorkerCrashed: if a batch kept killing workers.
            BatchTimeout: if a batch kept overrunning ``batch_timeout``.
            Exception: whatever ``__getitem__`` raised, with the batch index noted and
                the worker's traceback chained.
        """
        while True:
            yield from self.iter_epoch()

    def iter_epoch(self) -> Iterator[Any]:
        """Yields the rest of the current epoch, then runs ``on_epoch_end`` once.

        Stopping early (``break``) keeps the position: the next call continues with the
        next undelivered batch.
        """
        if not self.is_running():
            raise RuntimeError("call start() before iterating the enqueuer")
        epoch = self._epoch
        num_batches = len(self.sequence)
        order = self._batch_order(epoch, num_batches)
        self._ship(epoch)
        self._fill_window(epoch, order, num_batches)
        monitor = self.monitor
        while self._next < num_batches:
            position, future = self._window.popleft()
            assert position == self._next, (position, self._next)
            try:
                batch = future.result() if monitor is None else monitor.result(future)
            except BaseException:
                self.stop()
                raise
            self._next += 1
            self._fill_window(epoch, order, num_batches)
            yield batch
            del batch
        if hasattr(self.sequence, "on_epoch_end"):
            self.sequence.on_epoch_end()
        self._epoch += 1
        self._next = 0

    def _batch_order(self, epoch: int, num_batches: int) -> Any:
        if not self.shuffle:
            return range(num_batches)  # indexing a plan's order costs microseconds
        plan = EpochPlan(num_batches, 1, shuffle=self.shuffle, seed=self.seed)
        return plan.epoch_order(epoch)

    def _ship(self, epoch: int) -> None:
        if self._shipped_epoch != epoch:
            self._executor.start_epoch(epoch, self._computed)
            self._shipped_epoch = epoch

    def _fill_window(self, epoch: int, order: Any, num_batches: int) -> None:
        last = self._window[-1][0] if self._window else self._next - 1
        while last + 1 < num_batches and len(self._window) < self.max_queue_size:
            last += 1
            self._window.append((last, self._executor.submit(epoch, int(order[last]))))

    # -- resumable state --------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch being delivered (the next one, after a whole epoch)."""
        return self._epoch

    @property
    def next_index(self) -> int:
        """Batches of the current epoch delivered by this enqueuer."""
        return self._next

    def _elastic(self) -> bool:
        # A Pipeline read in its own order: the state is a position in the epoch's
        # global order (NOTE [ Elastic resume ]).
        return not self.shuffle and callable(getattr(self.sequence, "identity", None))

    def _identity(self) -> dict[str, Any]:
        if self._elastic():
            return self.sequence.identity()
        plan = getattr(self.sequence, "plan", None)
        return {
            "num_batches": len(self.sequence),
            "shuffle": self.shuffle,
            "seed": self.seed,
            "plan": None if plan is None else repr(plan),
        }

    def state(self) -> dict[str, Any]:
        """Returns a JSON-able checkpoint: where the epoch is, and what it belongs to.

        Over a `Pipeline`: ``{"epoch", "position", "block", "next_index", "identity"}``,
        where ``position`` counts the samples of the epoch's global order delivered by
        all shards together; it resumes on another shard count, batch size, worker count
        or executor (NOTE [ Elastic resume ]). Otherwise (another sequence, or
        ``shuffle=True`` here): ``{"epoch", "next_index", "identity"}``, which resumes the
        same topology only. Pass it as ``initial_state`` to continue without repeating or
        skipping a sample.
        """
        state = {"epoch": self._epoch, "next_index": self._next, "identity": self._identity()}
        if self._elastic():
            state["position"] = self.sequence.position(self._next, self._epoch)
            state["block"] = self.sequence.order_block(self._epoch)
        return state

    def _restore(self, state: Any) -> None:
        if not isinstance(state, dict) or not {"epoch", "identity"} <= set(state):
            old = isinstance(state, dict) and "plan" in state
            raise ValueError(
                "initial_state was saved by an earlier version of seqpipe, whose orders "
                "differ; finish that epoch with the version that saved it"
                if old
                else f"initial_state must be a dict returned by OrderedEnqueuer.state(). "
                f"Received: {state!r}"
            )
        self._check_identity(state["identity"])
        epoch = check_int("initial_state['epoch']", state["epoch"], 0)
        if self._elastic():
            samples = self.sequence.num_samples
            position = check_int(
                "initial_state['position']",
                state.get("position"),
                0,
                samples,
                hint=f"A position counts samples of the epoch's {samples}.",
            )
            self.sequence.set_epoch(epoch, position, state.get("block"))
            self._epoch, self._next = epoch, 0
            return
        num_batches = len(self.sequence)
        self._next = check_int(
            "initial_state['next_index']", state.get("next_index"), 0, num_batches
        )
        self._epoch = epoch
        if hasattr(self.sequence, "set_epoch"):
            self.sequence.set_epoch(epoch)

    def _check_identity(self, saved: Any) -> None:
        expected = self._identity()
        saved = saved if isinstance(saved, dict) else {}
        differs = [
            f"{key} is {saved.get(key)!r} in the state and {value!r} here"
            for key, value in expected.items()
            if saved.get(key) != value
        ]
        if not differs:
            return
        hint = ""
        if saved.get("seed") != expected.get("seed") and getattr(
            self.sequence, "seed_was_drawn", 0
        ):
            hint = (
                f". This pipeline drew its seed (seed=None): build it with "
                f"seed={saved.get('seed')!r} to resume that run"
            )
        raise ValueError(
            f"initial_state belongs to another pipeline or settings: {'; '.join(differs)}{hint}"
        )
