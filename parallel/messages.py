"""Typed messages between the enqueuer's parent process and its workers.

Every message crosses a ``multiprocessing.Connection`` (one duplex pipe per worker), so
a worker that dies mid-write can only break its own pipe, never a shared queue's lock.
Each ``send`` carries a list of messages: several tasks, or several results, travel in
one pipe write (on tiny batches the write, not the batch, is the cost). Messages are
named tuples: they pickle and build several times faster than dataclasses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# -- parent -> worker --------------------------------------------------------------


class NewEpoch(NamedTuple):
    """Start of an epoch: ``payload`` is the cloudpickled sequence, or ``None`` when the
    worker's copy only needs ``set_epoch(epoch)`` (a `Pipeline`, whose batches are a
    pure function of seed and epoch)."""

    epoch: int
    payload: bytes | None


class Task(NamedTuple):
    """Compute batch ``index`` of ``epoch``."""

    epoch: int
    index: int


class SpaceGrant(NamedTuple):
    """A shared-memory segment of at least the requested size for batch ``index`` of
    ``epoch``, or ``segment=None``: no room, send the batch through the pipe."""

    epoch: int
    index: int
    segment: str | None
    size: int


class Shutdown(NamedTuple):
    """Exit the worker loop."""


# -- worker -> parent --------------------------------------------------------------


class NeedSpace(NamedTuple):
    """Batch ``index`` needs ``nbytes`` of shared memory."""

    epoch: int
    index: int
    nbytes: int


class BatchReady(NamedTuple):
    """Batch ``index``: ``header`` is its pickle (protocol 5) and ``layout`` the
    ``(offset, nbytes)`` of each out-of-band buffer inside ``segment``."""

    epoch: int
    index: int
    header: bytes
    segment: str | None
    layout: tuple[tuple[int, int], ...]


class SmallBatch(NamedTuple):
    """Batch ``index`` as `shm.encode_small` encoded it (small arrays, no segment)."""

    epoch: int
    index: int
    encoded: Any


class BatchFailed(NamedTuple):
    """``__getitem__(index)`` raised: the exception (pickled when possible, else
    ``None``), its type and text, and the worker's formatted traceback."""

    epoch: int
    index: int
    error: bytes | None
    error_type: str
    message: str
    traceback: str
