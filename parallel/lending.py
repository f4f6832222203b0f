"""`SegmentLender`: shared-memory segments lent to workers, one batch at a time."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

from .errors import remote_error
from .messages import BatchFailed, SmallBatch, SpaceGrant, Task
from .shm import NoSpace, SharedArrayPool, decode_small


class SegmentLender:
    """Lends segments of a `SharedArrayPool` to workers and takes them back with the
    answers: a batch that lives in its segment keeps it until the batch is collected.

    Args:
        shm: the pool the segments come from.

    Example:
        >>> lender = SegmentLender(SharedArrayPool(max_free=1))
        >>> granted = {}
        >>> grant = lender.lend(granted, Task(0, 3), 1 << 20)
        >>> granted == {Task(0, 3): grant.segment}
        True
        >>> lender.shm.close()
    """

    def __init__(self, shm: SharedArrayPool) -> None:
        self.shm = shm
        self._warned = False

    def lend(
        self, granted: dict[Task, str], key: Task, nbytes: int, ahead: bool = False
    ) -> SpaceGrant | None:
        """A segment of ``nbytes`` for batch ``key``, recorded in ``granted``.

        Without room, a refusal (the batch then crosses the pipe, with one warning), or
        ``None`` for a segment sent ``ahead`` of its task: the worker asks later.
        """
        try:
            segment = self.shm.acquire(nbytes)
        except NoSpace as error:
            if ahead:
                return None
            self._warn(error)
            return SpaceGrant(key.epoch, key.index, None, 0)
        granted[key] = segment.name
        return SpaceGrant(key.epoch, key.index, segment.name, segment.size)

    def answer(self, segment: str | None, message: Any) -> tuple[bool, Any]:
        """``(ok, batch or error)`` of a worker's answer, given the segment lent for it;
        the segment goes back to the pool unless the batch is a view of it."""
        if type(message) is SmallBatch:
            result: tuple[bool, Any] = (True, decode_small(message.encoded))
        elif isinstance(message, BatchFailed):
            result = (False, remote_error(message))
        else:
            try:
                if message.segment is not None:
                    return True, self.shm.unpack(segment, message.header, message.layout)
                result = (True, pickle.loads(message.header))
            except Exception as error:
                result = (False, error)
        if segment is not None:
            self.shm.release(segment)
        return result

    def _warn(self, error: NoSpace) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{error}, so batches that do not fit cross through a pipe instead (slower). "
            f"Give it more room: Docker's default /dev/shm is 64 MB, run the container "
            f"with `docker run --shm-size=8g ...` (or `shm_size:` in docker-compose), or "
            f"point SEQPIPE_SHM_DIR at a larger tmpfs",
            RuntimeWarning,
            stacklevel=3,
        )
