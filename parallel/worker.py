"""The loop each enqueuer worker process runs.

Imports only the standard library, numpy and cloudpickle: workers are started with
forkserver (see NOTE [ Start method ] in ``parallel/pool.py``), and whatever a worker
imports it pays for at every start.

NOTE [ Batched results ]
Tasks arrive several per message. A worker answers small, quick batches together: it
keeps their results until it has no task left, holds `_MAX_RESULTS` of them, or a task
took longer than `_FLUSH_AFTER_SECONDS` (a slow task would delay the kept ones), then
sends them in one pipe write. Which task it is computing is never inferred from what it
sent: it is written to the worker's progress slot (see `Progress`), which the parent
reads when the worker dies or overruns ``batch_timeout``.

NOTE [ Progress slot seqlock ]
The parent reads a worker's slot while the worker may be writing it, and a SIGKILL may
stop a write half-way. A sequence counter guards the slot (a seqlock): the writer makes
it odd, writes the fields, then makes it even again; the reader copies the fields
between two reads of one even counter value, else reads again, and after
`_SLOT_READ_TRIES` reports no task. The watchdog then looks again in its next round,
and a dead worker whose write was cut short has no batch charged: its batches are all
recomputed. So a hang or a death is never charged to a task pieced together from two
writes. Each field is one aligned double, stored and loaded whole; the counter and the
fields are written by separate numpy calls, which no compiler reorders, and x86-64
keeps stores in order and loads in order (TSO), all that a seqlock asks of the CPU. A
weakly ordered CPU (aarch64) may make the stores visible out of order, which no
Python-level fence can prevent: there the check is best effort.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import numpy as np

from .direct import DirectRead, plan_direct_read
from .messages import (
    BatchFailed,
    BatchReady,
    NeedSpace,
    NewEpoch,
    Shutdown,
    SmallBatch,
    SpaceGrant,
    Task,
)
from .shm import SegmentWriter, encode_small, pack, pack_in_place
from .worker_clocks import WorkerClock, set_this_worker

_ORPHAN_POLL_SECONDS = 0.2
# Reads of a slot being written before `Progress.current` gives up for this time.
_SLOT_READ_TRIES = 100
_MAX_RESULTS = 16
_FLUSH_AFTER_SECONDS = 0.0005


class Progress:
    """A worker's progress slot: five doubles in memory shared with the parent.

    ``[sequence, epoch, index, started, busy]``: the task being computed, when it
    started (``time.monotonic``, the same clock in every process) and whether one is,
    guarded by a sequence counter (NOTE [ Progress slot seqlock ]).

    Example:
        >>> from multiprocessing import RawArray
        >>> progress = Progress(RawArray("d", Progress.SIZE), 0)
        >>> progress.begin(Task(2, 7))
        >>> progress.current()[0]
        Task(epoch=2, index=7)
        >>> progress.end()
        >>> progress.current() is None
        True
    """

    SEQUENCE, EPOCH, INDEX, STARTED, BUSY = range(5)
    SIZE = 5

    def __init__(self, slots: Any, position: int) -> None:
        # A numpy view writes a slot several times faster than ctypes item access.
        self._slots = np.frombuffer(slots, dtype=np.float64)
        self._base = position * self.SIZE

    def _write(self, first: int, values: tuple[float, ...]) -> None:
        # One process writes a slot at a time: the parent before the worker starts,
        # then the worker alone. An odd count left by a writer that died mid-write
        # stays odd while this write runs.
        slots, base = self._slots, self._base
        writing = slots[base] + 1.0 if int(slots[base]) % 2 == 0 else slots[base]
        slots[base] = writing
        slots[base + first : base + first + len(values)] = values
        slots[base] = writing + 1.0

    def begin(self, task: Task) -> None:
        self._write(self.EPOCH, (task.epoch, task.index, time.monotonic(), 1.0))

    def end(self) -> None:
        self._write(self.BUSY, (0.0,))

    def expect_boot(self) -> None:
        """Marks the slot idle and not yet booted (the parent, before starting a worker)."""
        self._write(self.EPOCH, (0.0, 0.0, -1.0, 0.0))

    def boot(self) -> None:
        """Marks the worker as running its loop (the worker, first thing)."""
        self._write(self.STARTED, (0.0,))

    def booted(self) -> bool:
        """Whether the worker reached its loop: one that died before did not fail a batch."""
        # One double, written by one store: never torn.
        return bool(self._slots[self._base + self.STARTED] >= 0.0)

    def current(self) -> tuple[Task, float] | None:
        """``(task, started)`` of the task being computed; ``None`` when idle, or when no
        consistent copy could be read (a write in progress, or cut short by the worker's
        death): then no batch is blamed (NOTE [ Progress slot seqlock ])."""
        slots, base = self._slots, self._base
        for _ in range(_SLOT_READ_TRIES):
            sequence = slots[base]
            if int(sequence) % 2 == 0:
                _, epoch, index, started, busy = slots[base : base + self.SIZE].tolist()
                if slots[base] == sequence:
                    return (Task(int(epoch), int(index)), started) if busy else None
            os.sched_yield()  # let a writer on this core finish
        return None


def _exit_when_orphaned(parent_pid: int) -> None:
    # A worker busy inside a long __getitem__ does not read its pipe; this thread
    # notices its parent's death (the worker is re-parented) and ends the process.
    # The parent is the enqueuer's process (fork, spawn) or the forkserver, which
    # exits when the enqueuer's process does.
    while True:
        time.sleep(_ORPHAN_POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(0)


def _failure(task: Task, error: BaseException) -> BatchFailed:
    try:
        payload: bytes | None = cloudpickle.dumps(error)
        pickle.loads(payload)
    except Exception:
        payload = None  # unpicklable exceptions still arrive as type, text and traceback
    return BatchFailed(
        task.epoch,
        task.index,
        payload,
        type(error).__qualname__,
        str(error),
        "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    )


class _Worker:
    """One worker's state: its pipe, its sequence, tasks not yet run, results not sent."""

    def __init__(
        self, conn: Connection, writer: SegmentWriter, progress: Progress, clock: WorkerClock
    ) -> None:
        self.conn = conn
        self.writer = writer
        self.progress = progress
        self.clock = clock
        self.sequence: Any = None
        self.inbox: deque[Any] = deque()  # messages received, in order, not handled
        self.outbox: list[Any] = []
        self.asked: set[Task] = set()  # tasks whose NeedSpace is sent, grant not used
        self.grants: dict[Task, SpaceGrant] = {}  # grants received, not used yet

    def flush(self) -> None:
        if self.outbox:
            self.conn.send_bytes(pickle.dumps(self.outbox, protocol=5))
            self.outbox = []

    def recv(self) -> list[Any]:
        # Plain pickle: Connection.send/recv build a ForkingPickler per message.
        return pickle.loads(self.conn.recv_bytes())

    def receive(self) -> None:
        for message in self.recv():
            self.keep(message)

    def keep(self, message: Any) -> None:
        # Grants are kept by task, whenever they arrive: sent ahead with their task
        # (`ProcessPool.submit` with nbytes) or answering a NeedSpace.
        if isinstance(message, SpaceGrant):
            self.grants[Task(message.epoch, message.index)] = message
        else:
            self.inbox.append(message)

    def plan(self, task: Task) -> DirectRead | None:
        try:
            return plan_direct_read(self.sequence, task.index)
        except Exception:
            return None  # the ordinary path reports whatever is wrong

    def ask(self, task: Task, nbytes: int) -> None:
        self.asked.add(task)
        self.outbox.append(NeedSpace(task.epoch, task.index, nbytes))

    def ask_ahead(self) -> None:
        # Segments for every task received are granted while this one is read
        # (read-direct only: other batches' sizes are known only once computed).
        for message in self.inbox:
            if not isinstance(message, Task):
                return  # a new epoch: its batches may differ in size
            if message not in self.asked and message not in self.grants:
                direct = self.plan(message)
                if direct is not None:
                    self.ask(message, direct.nbytes)

    def grant(self, task: Task, nbytes: int) -> SpaceGrant | None:
        """Waits for a segment for ``task``; ``None`` when a `Shutdown` arrived."""
        if task not in self.asked and task not in self.grants:
            self.ask(task, nbytes)
        self.ask_ahead()
        self.flush()
        if task not in self.grants:
            # Blocked on a segment (NOTE [ Worker clocks ] in parallel/worker_clocks.py):
            # clocks read only when the worker must wait for the parent anyway.
            waiting = time.perf_counter()
            while task not in self.grants:
                for message in self.recv():
                    if isinstance(message, Shutdown):
                        return None
                    self.keep(message)
            self.clock.add_blocked(time.perf_counter() - waiting)
        self.asked.discard(task)
        return self.grants.pop(task)

    def compute(self, task: Task) -> Any:
        """The answer to ``task``: `BatchReady` or `BatchFailed` (``None``: shut down)."""
        sequence = self.sequence
        direct = self.plan(task)
        if direct is not None:
            grant = self.grant(task, direct.nbytes)
            if grant is None:
                return None
            # A grant sent ahead was sized by the parent's plan: smaller means the two
            # disagree (never expected), and the pipe carries the batch instead.
            if grant.segment is not None and grant.size >= direct.nbytes:
                target = self.writer.view(grant.segment, grant.size)
                try:
                    batch = sequence.get_batch(task.index, sequence.epoch, out=direct.views(target))
                    header, layout = pack_in_place(batch, target)
                except Exception as error:
                    return _failure(task, error)
                return BatchReady(task.epoch, task.index, header, grant.segment, layout)
        try:
            batch = sequence[task.index]
            small = encode_small(batch)
            if small is not None:
                return SmallBatch(task.epoch, task.index, small)
            if direct is not None:  # refused shared memory: the pipe carries it all
                return BatchReady(task.epoch, task.index, pickle.dumps(batch, 5), None, ())
            header, buffers, layout, total = pack(batch)
        except Exception as error:
            return _failure(task, error)
        del batch
        if not buffers:
            return BatchReady(task.epoch, task.index, header, None, ())
        grant = self.grant(task, total)
        if grant is None:
            return None
        if grant.segment is None:
            header = pickle.dumps(pickle.loads(header, buffers=buffers), 5)
            return BatchReady(task.epoch, task.index, header, None, ())
        self.writer.write(grant.segment, grant.size, buffers, layout)
        return BatchReady(task.epoch, task.index, header, grant.segment, layout)

    def run(self) -> None:
        while True:
            if not self.inbox:
                self.flush()
                self.receive()
            message = self.inbox.popleft()
            if isinstance(message, Task):
                started = time.perf_counter()
                self.progress.begin(message)
                result = self.compute(message)
                if result is None:
                    return
                self.outbox.append(result)
                self.progress.end()
                elapsed = time.perf_counter() - started
                self.clock.add_busy(elapsed)
                if len(self.outbox) >= _MAX_RESULTS or elapsed > _FLUSH_AFTER_SECONDS:
                    self.flush()
            elif isinstance(message, NewEpoch):
                if message.payload is not None:
                    self.sequence = cloudpickle.loads(message.payload)
                else:
                    self.sequence.set_epoch(message.epoch)
            elif isinstance(message, Shutdown):
                return


def run_worker(
    conn: Connection, max_mapped: int, shm_dir: str, slots: Any, position: int, clocks: Any
) -> None:
    """Serves tasks from ``conn`` until `Shutdown` or the parent's death.

    Args:
        conn: this worker's end of its duplex pipe to the parent.
        max_mapped: segments kept mapped; an unlinked segment's memory is freed only
            once no process maps it, so this bounds what a worker can keep alive.
        shm_dir: the directory the parent creates segments in.
        slots: the pool's shared progress slots (a ``RawArray`` of doubles).
        position: this worker's slot in ``slots`` and ``clocks``.
        clocks: the pool's shared worker clocks (`WorkerClocks.array`).
    """
    # Ctrl-C reaches the whole process group; the parent owns shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    progress = Progress(slots, position)
    progress.boot()
    clock = WorkerClock(clocks, position)
    clock.boot()
    set_this_worker(clock)
    worker = _Worker(conn, SegmentWriter(max_mapped, shm_dir), progress, clock)
    try:
        worker.run()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone or closed our pipe
    finally:
        sys.stdout.flush()
