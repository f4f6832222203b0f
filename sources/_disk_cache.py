"""`DiskCache`: remote bytes (whole files or byte ranges) kept on local disk.

NOTE [ Disk cache across processes ]
Every entry is one file named by a hash of its key. A reader that misses takes the
entry's file lock (filelock), checks again, fetches, writes a temporary file in the same
directory and renames it into place: readers never see a partial entry, and worker
processes that miss the same entry at once fetch it once (the others wait on the lock,
then read the file). A read refreshes the entry's mtime through its open file, so an
entry evicted meanwhile is still read whole and the refresh cannot fail.

Eviction is amortised and serialised. The bytes written since the last scan are tracked
in ``locks/size`` under ``locks/size.lock``, shared by every process: a write adds its
size, and only when the tracked total passes ``max_bytes``, every `SCAN_EVERY_WRITES`
writes (to correct for writers killed before they counted), or when the record is
missing, does one process scan the directory, drop entries oldest-read first down to
`LOW_WATER` of the budget (never the entry just written), and record the exact total.
Only scans delete entries, one at a time, so the directory exceeds the budget by at
most the entries written but not yet counted, one per writer. A scan also sweeps
``.partial-*`` files and entry locks older than `STALE_SECONDS`, left by killed
processes (a lock swept while some process still waits on it costs at most one entry
fetched twice: the rename stays atomic). Lock files live in ``locks/`` and are not
counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from .._core.atomic_files import PARTIAL_PREFIX, write_atomically
from .._core.checks import check_writable_dir

_LOCKS = "locks"
_SIZE = "size"  # in locks/: "<bytes in entries> <writes since the last scan>"
SCAN_EVERY_WRITES = 256
LOW_WATER = 0.9  # a scan over budget drops entries down to this fraction of it
STALE_SECONDS = 3600.0  # a temporary file or an unused lock this old is a leftover


class DiskCache:
    """A directory of cached byte strings, bounded by ``max_bytes``, safe across processes.

    Args:
        directory: where entries are stored (created if missing).
        max_bytes: the budget; the least recently read entries are dropped beyond it.

    Raises:
        ValueError: if ``directory`` cannot be created or written, or ``max_bytes`` is
            not a positive integer.

    Example:
        >>> import tempfile
        >>> cache = DiskCache(tempfile.mkdtemp(), max_bytes=2**20)
        >>> cache.get(("s3", "bucket/key"), lambda: b"fetched once")
        b'fetched once'
        >>> cache.get(("s3", "bucket/key"), lambda: b"not called")
        b'fetched once'
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(
                f"the cache budget must be a positive number of bytes. Received: {max_bytes!r}"
            )
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_bytes = max_bytes
        check_writable_dir(self.directory, f"cache_dir {self.directory!r}")
        os.makedirs(os.path.join(self.directory, _LOCKS), exist_ok=True)

    def _paths(self, key: Any) -> tuple[str, str]:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        return (
            os.path.join(self.directory, digest),
            os.path.join(self.directory, _LOCKS, digest + ".lock"),
        )

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as file:
                data = file.read()
                # Most recently read: dropped last. Through the open file, which another
                # process may have evicted since (NOTE [ Disk cache across processes ]).
                os.utime(file.fileno())
        except FileNotFoundError:
            return None
        return data

    def get(self, key: Any, fetch: Callable[[], bytes]) -> bytes:
        """The bytes stored under ``key``, calling ``fetch`` (once, across processes) on a miss.

        Args:
            key: any value with a stable ``repr`` (tuples of strings and ints).
            fetch: returns the bytes when they are not cached.

        Returns:
            The cached or fetched bytes.
        """
        path, lock = self._paths(key)
        data = self._read(path)
        if data is not None:
            return data
        # Imported here: an `ImageFiles` over local files carries no cache, and its
        # workers should not pay for filelock at start.
        from filelock import FileLock

        with FileLock(lock):
            with contextlib.suppress(FileNotFoundError):  # swept as stale just now
                os.utime(lock)  # in use: not stale
            data = self._read(path)
            if data is not None:
                return data
            data = fetch()
            write_atomically(path, data)
        self._count(len(data), keep=path)
        return data

    def _count(self, nbytes: int, keep: str) -> None:
        """Adds a write of ``nbytes`` to the shared record; scans and evicts when due."""
        from filelock import FileLock

        record = os.path.join(self.directory, _LOCKS, _SIZE)
        with FileLock(record + ".lock"):
            try:
                with open(record) as file:
                    total, writes = (int(n) for n in file.read().split())
                total, writes = total + nbytes, writes + 1
                due = total > self.max_bytes or writes >= SCAN_EVERY_WRITES
            except (FileNotFoundError, ValueError):  # the first write, or a swept record
                due = True
            if due:
                total, writes = self._scan(keep), 0
            # Written in place: a record cut short by a kill reads as torn, and the next
            # write scans.
            with open(record, "w") as file:
                file.write(f"{total} {writes}")

    def _scan(self, keep: str) -> int:
        """Sweeps leftovers, evicts down to `LOW_WATER` if over budget; the bytes kept."""
        stale_before = time.time() - STALE_SECONDS
        entries = []
        for entry in _entries(self.directory):
            stat = _stat(entry)
            if stat is None:
                continue
            if entry.name.startswith(PARTIAL_PREFIX):
                if stat.st_mtime < stale_before:
                    _remove(entry.path)
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
        for entry in _entries(os.path.join(self.directory, _LOCKS)):
            stat = _stat(entry)
            if entry.name in (_SIZE, _SIZE + ".lock") or stat is None:
                continue
            if stat.st_mtime < stale_before:
                _remove(entry.path)  # an entry's lock
        total = sum(size for _, size, _ in entries)
        if total > self.max_bytes:
            target = int(self.max_bytes * LOW_WATER)
            for _, size, path in sorted(entries):
                if total <= target:
                    break
                if path != keep:
                    _remove(path)
                    total -= size
        return total

    def __repr__(self) -> str:
        return f"DiskCache({self.directory!r}, max_bytes={self.max_bytes})"


def _entries(directory: str) -> list[os.DirEntry]:
    with os.scandir(directory) as scan:
        return [entry for entry in scan if entry.is_file(follow_symlinks=False)]


def _stat(entry: os.DirEntry) -> os.stat_result | None:
    try:
        return entry.stat()
    except FileNotFoundError:  # removed since the listing (a sweep elsewhere)
        return None


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
