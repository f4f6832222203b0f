"""`Ticket`: the handle `ProcessPool.submit` returns for a batch, waited on or dropped.

It only holds the pool and the batch's key: `result` and `cancel` are the pool's
(``parallel/pool.py``), which this module does not import.
"""

from __future__ import annotations

from typing import Any

from .messages import Task


class Ticket:
    """A submitted batch: `result` waits for it (the pool's cheap stand-in for a Future)."""

    __slots__ = ("_key", "_pool", "_taken")

    def __init__(self, pool: Any, key: Task) -> None:
        self._pool, self._key = pool, key
        self._taken = False

    def result(self) -> Any:
        """The batch, or raises what computing it raised."""
        self._taken = True
        return self._pool.result(self._key)

    def cancel(self) -> bool:
        """Drops the batch: at once if it has arrived, else when it arrives (a batch
        already sent to a worker is still computed). Its shared-memory segment goes back
        to the pool.

        Returns:
            ``False`` if `result` was already called (nothing left to drop), else ``True``.
        """
        if self._taken:
            return False
        self._pool.cancel(self._key)
        return True
