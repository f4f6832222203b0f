"""`FailureLedger`: which batch killed or overran how many workers, and when to give up."""

from __future__ import annotations

from .errors import BatchTimeout, WorkerCrashed, WorkerStartFailed
from .messages import Task


class FailureLedger:
    """Counts, per batch, the workers that died or were killed computing it.

    A batch is recomputed on a fresh worker until it has cost ``max_retries`` workers in
    a row; then `charge` returns the error to deliver for it. Workers that die before
    they reach their loop are counted apart: no batch is to blame for them.

    Args:
        max_retries: workers one batch may cost (and workers in a row that may die while
            starting) before giving up.
        start_method: named in `WorkerStartFailed`.
        batch_timeout: named in `BatchTimeout`.

    Example:
        >>> ledger = FailureLedger(2, "forkserver", None)
        >>> ledger.charge(Task(0, 7), -9, timed_out=False) is None
        True
        >>> ledger.charge(Task(0, 7), -9, timed_out=False).index
        7
    """

    def __init__(self, max_retries: int, start_method: str, batch_timeout: float | None) -> None:
        self._max_retries = max_retries
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
        if len(codes) < self._max_retries:
            return None
        counts.pop(culprit)
        if timed_out:
            return BatchTimeout(culprit.index, self._batch_timeout, codes)
        return WorkerCrashed(culprit.index, codes)

    def started(self, booted: bool, exitcode: int | None) -> None:
        """Records a dead worker's start.

        Raises:
            WorkerStartFailed: at the ``max_retries``-th worker in a row that died before
                its loop (say a script without a ``__main__`` guard, re-run by spawn or
                forkserver in every worker): replacing it would go on forever.
        """
        if booted:
            self._boot_failures.clear()
            return
        self._boot_failures.append(exitcode)
        if len(self._boot_failures) >= self._max_retries:
            raise WorkerStartFailed(self._boot_failures, self._start_method)
