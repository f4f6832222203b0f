"""`OpenFiles`: a bounded, thread-safe pool of one process's open file handles.

NOTE [ Open file handles ]
A dataset of thousands of shards must not hold a handle on each: ``ulimit -n`` is often
1024, and every worker process has its own handles. A reader leases a handle for one
read (`OpenFiles.lease`): it takes an idle handle of that file, or opens one. While
leased, the handle is that thread's alone (a ``ParquetFile`` is not safe to share), so
two threads reading one file at once hold two handles, never one opened twice and
leaked. Returned, the handle becomes idle; when more than ``max_open`` are open, the
least recently used idle ones are closed, so at most ``max(max_open, leased)`` handles
are open. A read that raises closes its handle instead of returning it: a retry opens a
fresh one, and nothing is left open by a failure. Handles belong to one process: after
a fork or unpickling the pool starts empty (NOTE [ Remote files in worker processes ]
in ``sources/_locations.py``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from .._core.checks import check_int


class OpenFiles:
    """Open handles keyed by file, at most ``max_open`` kept (NOTE [ Open file handles ]).

    Args:
        max_open: handles kept open; ``0`` closes every handle when its lease ends.
        name: the argument's name in the error for a bad ``max_open``.

    Raises:
        ValueError: if ``max_open`` is not an integer >= 0.

    Example:
        >>> files = OpenFiles(1)
        >>> with files.lease("a", lambda: open(os.devnull, "rb")) as handle:
        ...     handle.read()
        b''
        >>> files.open_count
        1
        >>> with files.lease("b", lambda: open(os.devnull, "rb")) as handle:
        ...     files.open_count  # "a" was closed to make room for "b"
        1
        >>> files.close_all()
    """

    def __init__(self, max_open: int, name: str = "max_open_files") -> None:
        self.max_open = check_int(name, max_open, 0)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        # A new lock after a fork: the parent's may have been held by a thread that the
        # child does not have.
        self._lock = threading.Lock()
        # Idle handles, least recently returned first: ((key, serial), handle).
        self._idle: OrderedDict[tuple[Hashable, int], Any] = OrderedDict()
        self._serial = 0
        self._leased = 0  # invariant: handles opened by this pool and not yet returned

    @property
    def open_count(self) -> int:
        """Handles of this process open now, idle or leased."""
        return len(self._idle) + self._leased

    @contextlib.contextmanager
    def lease(self, key: Hashable, opener: Callable[[], Any], fresh: bool = False) -> Iterator[Any]:
        """An open handle on ``key`` for this thread alone, until the block ends.

        Args:
            key: what identifies the file (its path, its index).
            opener: opens a new handle when no idle one is left; called without the
                pool's lock (opening a remote file is a request).
            fresh: open a new handle even if an idle one is kept.

        Raises:
            Exception: whatever ``opener`` or the block raised; the handle is closed.
        """
        if self._pid != os.getpid():
            self._reset()  # handles of the parent process are not ours to use
        with self._lock:
            handle = None if fresh else self._take(key)
            self._leased += 1
            surplus = self._evict()  # room for the handle about to be opened
        for old in surplus:
            _close(old)
        try:
            if handle is None:
                handle = opener()
            yield handle
        except BaseException:
            with self._lock:
                self._leased -= 1
            if handle is not None:
                _close(handle)
            raise
        with self._lock:
            self._leased -= 1
            self._serial += 1
            self._idle[(key, self._serial)] = handle
            surplus = self._evict()
        for old in surplus:
            _close(old)

    def _take(self, key: Hashable) -> Any:
        # The most recently returned idle handle of ``key``: scanning from the newest end
        # finds a hot file at once.
        for entry in reversed(self._idle):
            if entry[0] == key:
                return self._idle.pop(entry)
        return None

    def _evict(self) -> list[Any]:
        surplus = []
        while self._idle and len(self._idle) + self._leased > self.max_open:
            surplus.append(self._idle.popitem(last=False)[1])
        return surplus

    def close_all(self) -> None:
        """Closes the idle handles (leased ones are closed when their lease ends)."""
        if self._pid != os.getpid():
            self._reset()
            return
        with self._lock:
            idle = list(self._idle.values())
            self._idle.clear()
        for handle in idle:
            _close(handle)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_open = state["max_open"]
        self._reset()

    def __repr__(self) -> str:
        return f"OpenFiles(max_open={self.max_open}, open={self.open_count})"


def _close(handle: Any) -> None:
    # A handle whose file vanished or whose connection broke may fail to close: it is
    # closed as far as this process is concerned.
    with contextlib.suppress(Exception):
        handle.close()
