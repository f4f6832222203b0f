"""Where batches are computed: in the consumer's thread, in threads, or in processes.

Each executor has the same three calls: ``start_epoch(epoch, sequence)`` before the
epoch's first task, ``submit(epoch, index) -> handle`` (with ``result()`` and
``cancel()``) and ``shutdown(timeout)``.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cloudpickle

from .direct import plan_direct_read
from .errors import batch_note
from .pool import ProcessPool
from .ticket import Ticket


def _compute(sequence: Any, epoch: int, index: int) -> Any:
    try:
        return sequence[index]
    except Exception as error:
        if hasattr(error, "add_note"):
            error.add_note(batch_note(index, epoch))
        raise


class _Deferred:
    """A future computed when its result is asked for (in-process execution)."""

    def __init__(self, sequence: Any, epoch: int, index: int) -> None:
        self._args = (sequence, epoch, index)

    def result(self) -> Any:
        return _compute(*self._args)

    def cancel(self) -> bool:
        return True


class InlineExecutor:
    """Computes each batch in the consumer's thread, when it is consumed."""

    def start_epoch(self, epoch: int, sequence: Any) -> None:
        self._sequence = sequence

    def submit(self, epoch: int, index: int) -> _Deferred:
        return _Deferred(self._sequence, epoch, index)

    def shutdown(self, timeout: float | None = None) -> None:
        pass


class ThreadExecutor:
    """Computes batches in ``workers`` threads sharing the sequence object."""

    def __init__(self, workers: int) -> None:
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="seqpipe-worker")

    def start_epoch(self, epoch: int, sequence: Any) -> None:
        self._sequence = sequence

    def submit(self, epoch: int, index: int) -> Future:
        return self._threads.submit(_compute, self._sequence, epoch, index)

    def shutdown(self, timeout: float | None = None) -> None:
        # Bounded like the process pool's: a thread cannot be killed, so one still
        # inside __getitem__ after ``timeout`` (5 s by default) is left to finish alone.
        self._threads.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + (5.0 if timeout is None else timeout)
        for thread in list(getattr(self._threads, "_threads", ())):
            thread.join(max(0.0, deadline - time.monotonic()))


class ProcessExecutor:
    """Computes batches in worker processes (see `ProcessPool`).

    The sequence is cloudpickled once per epoch, after ``on_epoch_end``, so workers see
    its effect. A sequence whose ``on_epoch_end`` only advances a pure epoch counter
    (``pure_epochs`` is true, as for a `Pipeline`) is shipped once; later epochs send
    just the epoch number.
    """

    def __init__(
        self,
        workers: int,
        start_method: str | None,
        max_retries: int,
        max_queue_size: int,
        batch_timeout: float | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.pool = ProcessPool(
            workers,
            start_method=start_method,
            max_retries=max_retries,
            max_free_segments=max_queue_size + (max_workers or workers),
            # The whole window, spread evenly: never more in flight than the queue.
            tasks_per_worker=-(-max_queue_size // workers),
            batch_timeout=batch_timeout,
            max_workers=max_workers,
        )
        self._shipped = False
        self._sequence: Any = None
        self._direct = False  # whether the epoch's batches are read in place

    def start_epoch(self, epoch: int, sequence: Any) -> None:
        self._sequence = sequence
        # Asked once per epoch: a sequence that is not read in place costs nothing more
        # per batch.
        self._direct = self._direct_bytes(0) > 0
        if self._shipped and getattr(sequence, "pure_epochs", False):
            self.pool.start_epoch(epoch, None)
            return
        try:
            payload = cloudpickle.dumps(sequence)
        except Exception as error:
            raise TypeError(
                f"the sequence {sequence!r} cannot be sent to worker processes: {error}. "
                f"Use threads (use_multiprocessing=False) or make it picklable"
            ) from error
        self.pool.start_epoch(epoch, payload)
        self._shipped = True

    def submit(self, epoch: int, index: int) -> Ticket:
        return self.pool.submit(epoch, index, self._direct_bytes(index) if self._direct else 0)

    def _direct_bytes(self, index: int) -> int:
        # The segment a worker will ask for, granted with the task (NOTE [ Read-direct ]).
        try:
            direct = plan_direct_read(self._sequence, index)
        except Exception:
            return 0  # the worker's own plan reports whatever is wrong
        return 0 if direct is None else direct.nbytes

    def shutdown(self, timeout: float | None = None) -> None:
        self.pool.shutdown(timeout)
