"""Typed control messages between the enqueuer's parent process and its workers.

Every message crosses a ``multiprocessing.Connection`` (one duplex pipe per worker), so
a worker that dies mid-write can only break its own pipe, never a shared queue's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- parent -> worker --------------------------------------------------------------


@dataclass(frozen=True)
class NewEpoch:
    """Start of an epoch: ``payload`` is the cloudpickled sequence, or ``None`` when the
    worker's copy only needs ``set_epoch(epoch)`` (a `Pipeline`, whose batches are a
    pure function of seed and epoch)."""

    epoch: int
    payload: bytes | None


@dataclass(frozen=True)
class Task:
    """Compute batch ``index`` of ``epoch``."""

    epoch: int
    index: int


@dataclass(frozen=True)
class SpaceGrant:
    """A shared-memory segment of at least the requested size, for batch ``index``."""

    index: int
    segment: str
    size: int


@dataclass(frozen=True)
class Shutdown:
    """Exit the worker loop."""


# -- worker -> parent --------------------------------------------------------------


@dataclass(frozen=True)
class NeedSpace:
    """Batch ``index`` is computed and needs ``nbytes`` of shared memory."""

    epoch: int
    index: int
    nbytes: int


@dataclass(frozen=True)
class BatchReady:
    """Batch ``index``: ``header`` is its pickle (protocol 5) and ``layout`` the
    ``(offset, nbytes)`` of each out-of-band buffer inside ``segment``."""

    epoch: int
    index: int
    header: bytes
    segment: str | None
    layout: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class BatchFailed:
    """``__getitem__(index)`` raised: the exception (pickled when possible, else
    ``None``), its type and text, and the worker's formatted traceback."""

    epoch: int
    index: int
    error: bytes | None
    error_type: str
    message: str
    traceback: str
