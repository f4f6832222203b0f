"""Worker failures: which batch killed or overran how many workers (`FailureLedger`),
and the watchdog that finds overrunning batches (`watch_overdue`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from .._core.checks import check_int
from .errors import BatchTimeout, WorkerCrashed, WorkerStartFailed
from .messages import Task

# With batch_timeout=None a batch computing this long gets a warning (tests shorten it).
HANG_WARNING_SECONDS = 60.0


class FailureLedger:
    """Counts, per batch, the workers that died or were killed computing it.

    A batch whose worker died is retried on a fresh worker ``max_retries`` times: the
    ``max_retries + 1``-th worker it costs makes `charge` return the error to deliver for
    it. Workers that die before they reach their loop are counted apart, with the same
    limit: no batch is to blame for them.

    Args:
        max_retries: times one batch is recomputed after its worker died or timed out
            (and workers in a row restarted after dying while starting), an int >= 0.
        start_method: named in `WorkerStartFailed`.
        batch_timeout: named in `BatchTimeout`.

    Raises:
        ValueError: if ``max_retries`` is not an int >= 0.

    Example:
        >>> ledger = FailureLedger(1, "forkserver", None)
        >>> ledger.charge(Task(0, 7), -9, timed_out=False) is None  # one retry left
        True
        >>> ledger.charge(Task(0, 7), -9, timed_out=False).index
        7
    """

    def __init__(self, max_retries: int, start_method: str, batch_timeout: float | None) -> None:
        self._max_retries = check_int("max_retries", max_retries, 0)
        self._start_method = start_method
        self._batch_timeout = batch_timeout
        self._kills: dict[Task, list[int | None]] = {}
        self._timeouts: dict[Task, list[int | None]] = {}
        self._boot_failures: list[int | None] = []  # in a row: reset by a worker that booted

    def succeeded(self, key: Task) -> None:
        """Forgets what ``key`` cost: the batch was computed."""
        if self._kills or self._timeouts:
            self._kills.pop(key, None)
            self._timeouts.pop(key, None)

    def charge(self, culprit: Task, exitcode: int | None, timed_out: bool) -> Exception | None:
        """Records that ``culprit`` cost a worker; the error to deliver at the limit."""
        counts = self._timeouts if timed_out else self._kills
        codes = counts.setdefault(culprit, [])
        codes.append(exitcode)
        if len(codes) <= self._max_retries:
            return None
        counts.pop(culprit)
        if timed_out:
            return BatchTimeout(culprit.index, self._batch_timeout, codes)
        return WorkerCrashed(culprit.index, codes)

    def started(self, booted: bool, exitcode: int | None) -> None:
        """Records a dead worker's start.

        Raises:
            WorkerStartFailed: at the ``max_retries + 1``-th worker in a row that died
                before its loop (say a script without a ``__main__`` guard, re-run by spawn or
                forkserver in every worker): replacing it would go on forever.
        """
        if booted:
            self._boot_failures.clear()
            return
        self._boot_failures.append(exitcode)
        if len(self._boot_failures) > self._max_retries:
            raise WorkerStartFailed(self._boot_failures, self._start_method)


def watch_overdue(workers: Iterable[Any], batch_timeout: float | None, now: float) -> None:
    """Kills each worker whose batch has run past ``batch_timeout`` (its sentinel then
    brings it to the pool's replacement), or, without a timeout, warns once about a
    batch computing for longer than `HANG_WARNING_SECONDS`.

    Args:
        workers: the pool's workers (``progress``, ``process``, ``timed_out``,
            ``warned``).
        batch_timeout: seconds a batch may take, or ``None``.
        now: ``time.monotonic()``.
    """
    for worker in workers:
        current = worker.progress.current()
        if current is None or worker.timed_out is not None:
            continue
        task, started = current
        elapsed = now - started
        if batch_timeout is not None:
            if elapsed > batch_timeout:
                worker.timed_out = task
                worker.process.kill()
        elif elapsed > HANG_WARNING_SECONDS and worker.warned != current:
            worker.warned = current
            warnings.warn(
                f"batch {task.index} (epoch {task.epoch}) has been computing for "
                f"{elapsed:.0f} s in worker process {worker.process.pid}; if "
                f"__getitem__ hangs (a deadlock, a stuck read), pass "
                f"batch_timeout= to the enqueuer to kill and recompute it",
                RuntimeWarning,
                stacklevel=3,
            )
