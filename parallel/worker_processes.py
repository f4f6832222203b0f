"""The pool's worker processes seen from the parent: one `WorkerHandle` each, and
`WorkerProcesses`, which starts them, retires the dead ones (blaming the batch that
cost them) and stops them all. The workers' own loop is in ``worker.py``.

NOTE [ One pipe per worker ]
Each worker has its own duplex pipe; the parent's dispatcher thread waits on all pipes
and all process sentinels at once. A worker killed mid-message breaks only its own
pipe, and its death is seen at once through its sentinel, with the tasks it held known
exactly: they are recomputed by a replacement (see NOTE [ Batched results ] in ``worker.py``).
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .failures import FailureLedger
from .messages import Shutdown, Task
from .shm import SharedArrayPool
from .worker import Progress, run_worker
from .worker_clocks import WorkerClocks

# How long a dead or killed worker is given to exit: every wait is bounded
# (NOTE [ Bounded waits ] in ``parallel/pool.py``).
_REAP_SECONDS = 0.5


@dataclass(eq=False)
class WorkerHandle:
    """The parent's record of one worker process (NOTE [ One pipe per worker ])."""

    process: Any
    conn: Any
    progress: Progress
    position: int
    # Tasks sent and not answered, in the order sent (the worker runs them in order).
    tasks: deque[Task] = field(default_factory=deque)
    # Segments granted for tasks whose BatchReady has not arrived.
    granted: dict[Task, str] = field(default_factory=dict)
    timed_out: Task | None = None  # the task this worker was killed for
    warned: tuple[Task, float] | None = None  # the hang already warned about

    def send(self, messages: list[Any]) -> None:
        """Sends ``messages`` to the worker in one pipe write.

        Args:
            messages: parent-to-worker messages (``messages.py``), handled in order.
        """
        # A dead worker's send fails; its sentinel brings it to the pool's replacement.
        with contextlib.suppress(OSError):
            self.conn.send_bytes(pickle.dumps(messages, protocol=5))


class WorkerProcesses:
    """Starts, retires and stops the worker processes of one pool.

    Each worker computes at its own position: its `Progress` slot in memory shared with
    the parent. A retired worker's position goes to the next worker started.

    Args:
        ctx: the multiprocessing context (NOTE [ Start method ] in ``parallel/pool.py``).
        num_workers: the most workers alive at once.
        max_free_segments: free shared-memory segments each worker keeps mapped.
        shm: the pool the workers' segments come from.
        failures: the ledger charged with the batch each dead worker was computing.
    """

    def __init__(
        self,
        ctx: Any,
        num_workers: int,
        max_free_segments: int,
        shm: SharedArrayPool,
        failures: FailureLedger,
    ) -> None:
        self._ctx = ctx
        self._max_free_segments = max_free_segments
        self._shm = shm
        self._failures = failures
        self._slots = ctx.RawArray("d", Progress.SIZE * num_workers)
        self.clocks = WorkerClocks(ctx, num_workers)
        self._positions = list(range(num_workers))  # positions no live worker holds
        self.workers: list[WorkerHandle] = []  # the live ones
        self.pids_started: list[int] = []

    def start(self) -> WorkerHandle:
        """Starts a worker at a free position.

        Returns:
            Its handle, also appended to ``workers``.
        """
        position = self._positions.pop()
        progress = Progress(self._slots, position)
        progress.expect_boot()
        self.clocks.reset(position)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=run_worker,
            args=(
                child_conn,
                self._max_free_segments,
                self._shm.directory,
                self._slots,
                position,
                self.clocks.array,
            ),
            daemon=True,
            name="seqpipe-worker",
        )
        process.start()
        child_conn.close()
        worker = WorkerHandle(process, parent_conn, progress, position)
        self.workers.append(worker)
        self.pids_started.append(process.pid)
        return worker

    def retire(self, worker: WorkerHandle) -> tuple[list[Task], tuple[Task, Exception] | None]:
        """Reaps a dead worker and takes back its position, pipe and segments.

        The batch it was computing (or was killed for) is charged to the failure ledger.

        Args:
            worker: a worker whose sentinel fired, its messages already read.

        Returns:
            The tasks it held, to recompute, in the order sent, and ``(task, error)``
            for the one batch that has cost too many workers (else ``None``): it is
            left out of those tasks, and its error is its result.

        Raises:
            WorkerStartFailed: when too many workers in a row died before their loop.
        """
        _reap(worker.process, _REAP_SECONDS)
        self.workers.remove(worker)
        worker.conn.close()
        for name in worker.granted.values():
            self._shm.release(name)
        current = worker.progress.current()
        self.clocks.retire(worker.position)
        self._positions.append(worker.position)
        tasks = list(worker.tasks)
        self._failures.started(worker.progress.booted(), worker.process.exitcode)
        culprit = worker.timed_out or (current[0] if current else None)
        if culprit in tasks:
            exitcode = worker.process.exitcode
            error = self._failures.charge(culprit, exitcode, worker.timed_out is not None)
            if error is not None:
                tasks.remove(culprit)
                return tasks, (culprit, error)
        return tasks, None

    def stop(self, timeout: float) -> None:
        """Asks every worker to stop and closes their pipes.

        Args:
            timeout: seconds, for all workers together, before the ones still running
                are killed.
        """
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.send([Shutdown()])
        for worker in self.workers:
            _reap(worker.process, max(0.0, deadline - time.monotonic()))
            worker.conn.close()
        self.workers.clear()

    def kill(self) -> None:
        """Kills every worker now (from any thread: the dispatcher then sees them die)."""
        for worker in list(self.workers):
            worker.process.kill()


def _reap(process: Any, grace: float) -> None:
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(_REAP_SECONDS)
