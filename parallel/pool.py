"""`ProcessPool`: persistent worker processes with crash recovery, for the enqueuer.

Its dispatcher thread sends tasks to the workers and hands their results to the
consumer. The wake-ups between the two threads are in ``wakeup.py``; starting,
replacing and stopping the worker processes is in ``worker_processes.py``.

NOTE [ Start method ]
Workers start with ``forkserver`` by default: a clean server process (no TensorFlow, no
threads of the parent) forks each worker, so starting workers is safe after TensorFlow
or any threaded library was imported in the parent, which ``fork`` is not (a fork of a
process with running threads can inherit a held lock and hang). ``spawn`` is equally
safe but slower to start; ``fork`` is accepted for measurements. The parent module
``__main__`` is re-imported in workers by forkserver and spawn alike: keep heavy imports
under ``if __name__ == "__main__":``.

NOTE [ Bounded waits ]
Every wait has a timeout: the consumer re-checks the dispatcher's health every
`_POLL_SECONDS`, the dispatcher wakes at least that often to run the watchdog, and
`shutdown` gives workers ``timeout`` seconds in all (5 by default) before killing
them. A Ctrl-C during `shutdown` (the second one, after the one that stopped the loop)
kills the workers at once.
"""

from __future__ import annotations

import multiprocessing
import pickle
import selectors
import threading
import time
import weakref
from collections import deque
from typing import Any

from . import failures
from .errors import WorkerStartFailed
from .failures import FailureLedger, watch_overdue
from .lending import SegmentLender
from .messages import NeedSpace, NewEpoch, Shutdown, Task
from .shm import SharedArrayPool
from .ticket import Ticket
from .wakeup import WakeUp
from .worker_clocks import PoolStats
from .worker_processes import WorkerHandle, WorkerProcesses

_LIVE_POOLS: weakref.WeakSet[ProcessPool] = weakref.WeakSet()
_POLL_SECONDS = 0.5
_DEFAULT_SHUTDOWN_SECONDS = 5.0


class ProcessPool:
    """Worker processes computing ``sequence[index]`` into shared memory.

    Args:
        num_workers: processes to keep alive.
        start_method: ``'forkserver'`` (default), ``'spawn'`` or ``'fork'``.
        max_retries: times one batch is recomputed after killing its worker or timing
            out on it; the ``max_retries + 1``-th such worker fails it with
            `WorkerCrashed` or `BatchTimeout`.
        max_free_segments: free shared-memory segments kept for reuse (and mapped by
            each worker): the enqueuer passes ``max_queue_size + workers``.
        tasks_per_worker: most tasks sent ahead to one worker.
        batch_timeout: seconds one batch may take before its worker is killed and the
            batch recomputed; ``None`` only warns after `failures.HANG_WARNING_SECONDS`.
        max_workers: the most workers `add_worker` may bring the pool to (default
            ``num_workers``).

    Raises:
        ValueError: for a bad worker count, start method, ``max_retries`` or timeout.
    """

    def __init__(
        self,
        num_workers: int,
        start_method: str | None = None,
        max_retries: int = 3,
        max_free_segments: int = 16,
        tasks_per_worker: int = 4,
        batch_timeout: float | None = None,
        max_workers: int | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1. Received: num_workers={num_workers}")
        method = start_method or "forkserver"
        if method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}. "
                f"Received: start_method={method!r}"
            )
        self._ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            self._ctx.set_forkserver_preload(["seqpipe.parallel.worker"])
        self._num_workers = num_workers
        self._capacity = max(num_workers, max_workers or num_workers)
        self._per_worker = max(1, tasks_per_worker)
        self._low = max(1, self._per_worker // 2)
        # Tasks sent ahead to all workers together, shared anew when the count changes.
        self._in_flight = self._per_worker * num_workers
        self._target = num_workers  # workers taking tasks, as add/retire_worker asked
        self._batch_timeout = batch_timeout
        self._failures = FailureLedger(max_retries, method, batch_timeout)  # checks first
        self.shm = SharedArrayPool(max_free=max_free_segments)
        self._lender = SegmentLender(self.shm)
        self._wakeup = WakeUp()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wakeup, selectors.EVENT_READ, ("wake", None))
        self._pending: deque[Task | NewEpoch] = deque()
        self._sizes: dict[Task, int] = {}  # segment sizes to grant with tasks (`submit`)
        self._results: dict[tuple[int, int], tuple[bool, Any]] = {}
        # Batches whose tickets were cancelled before they arrived; with `_results`,
        # changed under `_results_lock` where a cancel may race a delivery.
        self._cancelled: set[tuple[int, int]] = set()
        self._results_lock = threading.Lock()
        self._failure: BaseException | None = None
        self._processes = WorkerProcesses(
            self._ctx, self._capacity, max_free_segments, self.shm, self._failures
        )
        # The workers that take tasks; `_processes.workers` also holds the retiring ones,
        # which finish the tasks they hold and then exit (`retire_worker`).
        self._workers: list[WorkerHandle] = []
        self._draining: list[WorkerHandle] = []  # retiring, with tasks still to answer
        self.worker_pids_started = self._processes.pids_started
        self._epoch_messages: list[NewEpoch] = []
        self._next_watch = 0.0
        self._stopping = False
        self._join_timeout = _DEFAULT_SHUTDOWN_SECONDS
        self._thread = threading.Thread(target=self._run, name="seqpipe-dispatcher", daemon=True)
        self._thread.start()
        _LIVE_POOLS.add(self)

    # -- called from the consumer's thread ---------------------------------------------

    def start_epoch(self, epoch: int, payload: bytes | None) -> None:
        """Ships the sequence for ``epoch`` (or just the epoch number, payload ``None``)."""
        if not self._thread.is_alive():
            raise RuntimeError("the worker pool is shut down")
        # Through the task deque: workers must see it before the epoch's tasks.
        self._pending.append(NewEpoch(epoch, payload))
        self._wakeup.wake()

    def submit(self, epoch: int, index: int, nbytes: int = 0) -> Ticket:
        """Schedules ``sequence[index]``; the ticket's ``result()`` is the batch.

        ``nbytes``, when known (a read-direct batch's size), has the segment granted
        with the task, which saves the worker a round trip to ask for it.
        """
        task = Task(epoch, index)
        if nbytes:
            self._sizes[task] = nbytes
        wakeup = self._wakeup
        with wakeup.lock:  # NOTE [ Handing batches to the consumer ] in parallel/wakeup.py
            self._pending.append(task)
            must_wake, wakeup.hungry = wakeup.hungry, False
        if must_wake:
            wakeup.wake()
        return Ticket(self, task)

    def result(self, key: Task) -> Any:
        """Waits for the batch of ``key`` and returns it (or raises its error).

        Raises:
            RuntimeError: if the pool shut down before the batch arrived.
        """
        entry = self._results.pop(key, None)
        while entry is None:
            wakeup = self._wakeup
            with wakeup.lock:  # NOTE [ Handing batches to the consumer ]
                wakeup.consumer_waiting = True
                entry = self._results.pop(key, None)
            if entry is None:
                if not self._thread.is_alive():
                    if isinstance(self._failure, WorkerStartFailed):
                        raise self._failure
                    raise RuntimeError("the worker pool is shut down") from self._failure
                # A stale notify only makes this loop look once more.
                wakeup.wait(_POLL_SECONDS)
                entry = self._results.pop(key, None)
            wakeup.consumer_waiting = False
        ok, value = entry
        if ok:
            return value
        raise value

    def cancel(self, key: Task) -> None:
        """Drops the batch of ``key``: now if it has arrived, else when it arrives."""
        with self._results_lock:
            if self._results.pop(key, None) is None:
                self._cancelled.add(key)

    def worker_pids(self) -> list[int]:
        """Pids of the live workers."""
        return [w.process.pid for w in list(self._processes.workers)]

    def add_worker(self) -> bool:
        """Asks for one more worker (started by the dispatcher thread).

        Returns:
            ``False`` when the pool is at ``max_workers`` already.
        """
        if self._target >= self._capacity:
            return False
        self._target += 1
        self._wakeup.wake()
        return True

    def retire_worker(self) -> bool:
        """Asks one worker to stop once it has delivered the tasks it holds.

        Every batch is still delivered exactly once: a retiring worker takes no new task,
        and one that dies while retiring has its tasks recomputed by the others.

        Returns:
            ``False`` when one worker is left (it stays).
        """
        if self._target <= 1:
            return False
        self._target -= 1
        self._wakeup.wake()
        return True

    def stats(self) -> PoolStats:
        """What the pool and its workers measured so far (read-only, any thread)."""
        processes = list(self._processes.workers)
        clocks = self._processes.clocks
        segment_bytes, segments = self.shm.usage()
        return PoolStats(
            workers=self._target,
            processes=len(processes),
            ready=len(self._results),
            segment_bytes=segment_bytes,
            segments=segments,
            totals=clocks.totals([w.position for w in processes]),
            per_worker=tuple(clocks.read(w.position) for w in processes),
        )

    def shutdown(self, timeout: float | None = None) -> None:
        """Stops the workers (killing any still running after ``timeout`` seconds in all,
        5 by default) and unlinks all shared memory. A KeyboardInterrupt while waiting
        kills the workers at once."""
        self._join_timeout = _DEFAULT_SHUTDOWN_SECONDS if timeout is None else timeout
        budget = self._join_timeout + 2.0
        try:
            if self._thread.is_alive():
                self._stopping = True
                self._wakeup.wake()
                self._thread.join(budget)
            if self._thread.is_alive():
                self._kill_workers()
                self._thread.join(budget)
        except KeyboardInterrupt:
            self._kill_workers()
            raise
        finally:
            if not self._thread.is_alive() and self in _LIVE_POOLS:
                _LIVE_POOLS.discard(self)
                self._selector.close()
                self._wakeup.close()

    def _kill_workers(self) -> None:
        self._stopping = True
        self._processes.kill()
        self.shm.close()

    # -- the dispatcher thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            for _ in range(self._num_workers):
                self._spawn()
            live = self._processes.workers
            while not self._stopping:
                self._dispatch()
                for key, _ in self._selector.select(self._watch_period()):
                    kind, worker = key.data
                    if kind == "wake":
                        self._wakeup.drain()
                    elif worker in live and kind == "conn":
                        self._receive(worker)
                    elif worker in live:
                        self._replace(worker)
                if self._target != len(self._workers) or self._draining:
                    self._rescale()
                self._wakeup.notify(self._stopping)
                if time.monotonic() >= self._next_watch:
                    self._watch()
        except BaseException as error:  # never leave a consumer waiting on a dead thread
            self._failure = error
        finally:
            self._stopping = True
            self._stop_workers()
            self._wakeup.notify(self._stopping)

    def _watch_period(self) -> float:
        period = min(_POLL_SECONDS, failures.HANG_WARNING_SECONDS / 4)
        if self._batch_timeout is not None:
            period = min(period, self._batch_timeout / 4)
        return period

    def _spawn(self) -> None:
        worker = self._processes.start()
        self._workers.append(worker)
        # Its death shows at once on its sentinel (NOTE [ One pipe per worker ] in
        # parallel/worker_processes.py).
        self._selector.register(worker.conn, selectors.EVENT_READ, ("conn", worker))
        self._selector.register(worker.process.sentinel, selectors.EVENT_READ, ("dead", worker))
        if self._epoch_messages:
            worker.send(list(self._epoch_messages))

    def _new_epoch(self, message: NewEpoch) -> None:
        # A replacement worker needs the last full payload, then the epoch.
        if message.payload is not None:
            self._epoch_messages = [message]
        else:
            self._epoch_messages = [self._epoch_messages[0], message]
        for worker in self._workers:
            worker.send([message])

    def _dispatch(self) -> None:
        # Every pending task goes out now, one message per worker; then tell the
        # consumer whether its next submit must wake us
        # (NOTE [ Handing batches to the consumer ] in parallel/wakeup.py).
        wakeup = self._wakeup
        while True:
            outgoing: dict[int, tuple[WorkerHandle, list[Any]]] = {}
            while self._pending and self._workers:
                if isinstance(self._pending[0], NewEpoch):
                    self._flush(outgoing)
                    self._new_epoch(self._pending.popleft())
                    continue
                worker = min(self._workers, key=lambda w: len(w.tasks))
                if len(worker.tasks) >= self._per_worker:
                    break
                task = self._pending.popleft()
                worker.tasks.append(task)
                messages = outgoing.setdefault(worker.position, (worker, []))[1]
                if self._sizes:
                    self._grant_ahead(worker, task, messages)
                messages.append(task)
            self._flush(outgoing)
            with wakeup.lock:
                wakeup.hungry = any(len(w.tasks) < self._low for w in self._workers)
                more = wakeup.hungry and bool(self._pending)
            if not more:
                return

    def _grant_ahead(self, worker: WorkerHandle, task: Task, messages: list[Any]) -> None:
        nbytes = self._sizes.pop(task, 0)
        if nbytes and task not in worker.granted:
            grant = self._lender.lend(worker.granted, task, nbytes, ahead=True)
            if grant is not None:
                messages.append(grant)  # before its task

    def _flush(self, outgoing: dict[int, tuple[WorkerHandle, list[Any]]]) -> None:
        for worker, tasks in outgoing.values():
            worker.send(tasks)
        outgoing.clear()

    def _receive(self, worker: WorkerHandle, drain: bool = False) -> None:
        # One message per readiness event (the selector reports the rest), or, for a
        # dead worker, everything it sent. Plain pickle: Connection.recv builds an
        # unpickler per message.
        try:
            while True:
                for message in pickle.loads(worker.conn.recv_bytes()):
                    self._handle(worker, message)
                if not (drain and worker.conn.poll()):
                    return
        except (EOFError, OSError):
            if worker.process.is_alive():
                worker.process.kill()  # a worker that broke its pipe is of no more use

    def _handle(self, worker: WorkerHandle, message: Any) -> None:
        key = (message.epoch, message.index)  # equal to, and hashed like, the Task
        if type(message) is NeedSpace:
            worker.send([self._lender.lend(worker.granted, Task(*key), message.nbytes)])
            return
        if worker.tasks and worker.tasks[0] == key:
            worker.tasks.popleft()
        else:
            worker.tasks = deque(t for t in worker.tasks if t != key)
        self._failures.succeeded(key)
        ok, value = self._lender.answer(worker.granted.pop(key, None), message)
        self._deliver(key, ok, value)

    def _deliver(self, key: tuple[int, int], ok: bool, value: Any) -> None:
        with self._results_lock:
            if key in self._cancelled:
                # Dropped: a batch in shared memory frees its segment with its arrays
                # (NOTE [ When a segment is reused ] in parallel/shm.py).
                self._cancelled.discard(key)
                return
            self._results[key] = (ok, value)
        self._wakeup.delivered = True

    def _watch(self) -> None:
        now = time.monotonic()
        self._next_watch = now + self._watch_period()
        watch_overdue(self._processes.workers, self._batch_timeout, now)

    def _replace(self, worker: WorkerHandle) -> None:
        self._receive(worker, drain=worker.conn.poll())  # what it sent before dying counts
        self._selector.unregister(worker.conn)
        self._selector.unregister(worker.process.sentinel)
        for workers in (self._workers, self._draining):
            if worker in workers:
                workers.remove(worker)
        tasks, failed = self._processes.retire(worker)
        if failed is not None:
            culprit, error = failed
            self._deliver(culprit, False, error)
        self._pending.extendleft(reversed(tasks))
        if not self._stopping and len(self._workers) < self._target:
            self._spawn()

    def _rescale(self) -> None:
        # Brings the workers taking tasks to `_target`: starting ones (while a position
        # is free: retiring workers keep theirs until they exit) or moving the least
        # loaded to `_draining`; each gets Shutdown once it has answered every task.
        while len(self._workers) < self._target and len(self._processes.workers) < self._capacity:
            self._spawn()
        while len(self._workers) > self._target:
            worker = min(self._workers, key=lambda w: len(w.tasks))
            self._workers.remove(worker)
            self._draining.append(worker)
        for worker in [w for w in self._draining if not w.tasks]:
            self._draining.remove(worker)
            worker.send([Shutdown()])
        self._per_worker = max(1, -(-self._in_flight // max(1, len(self._workers))))
        self._low = max(1, self._per_worker // 2)

    def _stop_workers(self) -> None:
        self._processes.stop(self._join_timeout)
        self._pending.clear()
        with self._results_lock:
            self._results.clear()
            self._cancelled.clear()
        self.shm.close()


def shutdown_all() -> None:
    """Shuts down every live pool (registered with ``atexit`` by the enqueuer)."""
    for pool in list(_LIVE_POOLS):
        pool.shutdown(timeout=1.0)
