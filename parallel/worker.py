"""The loop each enqueuer worker process runs.

Imports only the standard library, numpy and cloudpickle: workers are started with
forkserver (see NOTE [ Start method ] in ``parallel/pool.py``), and whatever a worker
imports it pays for at every start.
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

from .messages import BatchFailed, BatchReady, NeedSpace, NewEpoch, Shutdown, SpaceGrant, Task
from .shm import SegmentWriter, pack

_ORPHAN_POLL_SECONDS = 0.2


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


def run_worker(conn: Connection, max_mapped: int) -> None:
    """Serves tasks from ``conn`` until `Shutdown` or the parent's death.

    Args:
        conn: this worker's end of its duplex pipe to the parent.
        max_mapped: segments kept mapped; an unlinked segment's memory is freed only
            once no process maps it, so this bounds what a worker can keep alive.
    """
    # Ctrl-C reaches the whole process group; the parent owns shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    writer = SegmentWriter(max_mapped)
    sequence: Any = None
    # Messages that arrived while this worker waited for a SpaceGrant.
    stashed: deque[Any] = deque()

    def wait_for_grant(index: int) -> SpaceGrant | None:
        while True:
            message = conn.recv()
            if isinstance(message, SpaceGrant) and message.index == index:
                return message
            if isinstance(message, Shutdown):
                return None
            stashed.append(message)

    try:
        while True:
            message = stashed.popleft() if stashed else conn.recv()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, NewEpoch):
                if message.payload is not None:
                    sequence = cloudpickle.loads(message.payload)
                else:
                    sequence.set_epoch(message.epoch)
                continue
            try:
                batch = sequence[message.index]
                header, buffers, layout, total = pack(batch)
            except Exception as error:
                conn.send(_failure(message, error))
                continue
            del batch
            segment = None
            if buffers:
                conn.send(NeedSpace(message.epoch, message.index, total))
                grant = wait_for_grant(message.index)
                if grant is None:
                    return
                writer.write(grant.segment, grant.size, buffers, layout)
                segment = grant.segment
            conn.send(BatchReady(message.epoch, message.index, header, segment, layout))
            del buffers
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone or closed our pipe
    finally:
        sys.stdout.flush()
