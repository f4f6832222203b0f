"""`DiskCache`: remote bytes (whole files or byte ranges) kept on local disk.

NOTE [ Disk cache across processes ]
Every entry is one file named by a hash of its key. A reader that misses takes the
entry's file lock (filelock), checks again, fetches, writes a temporary file in the same
directory and renames it into place: readers never see a partial entry, and worker
processes that miss the same entry at once fetch it once (the others wait on the lock,
then read the file). After a write, entries are dropped oldest-read first until the
directory holds at most ``max_bytes`` (reads refresh an entry's mtime). Lock files live
in ``locks/`` and are tiny; they are not counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from typing import Any

from .._core.atomic_files import write_atomically
from .._core.checks import check_writable_dir

_LOCKS = "locks"


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
        except FileNotFoundError:
            return None
        os.utime(path)  # most recently read: dropped last
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
            data = self._read(path)
            if data is not None:
                return data
            data = fetch()
            write_atomically(path, data)
        self._evict(keep=path)
        return data

    def _evict(self, keep: str) -> None:
        entries = []
        with os.scandir(self.directory) as scan:
            for entry in scan:
                if entry.is_file() and not entry.name.startswith(".partial-"):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:  # evicted by another thread or process
                        continue
                    entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path != keep:
                with contextlib.suppress(FileNotFoundError):  # another process was first
                    os.unlink(path)
                total -= size

    def __repr__(self) -> str:
        return f"DiskCache({self.directory!r}, max_bytes={self.max_bytes})"
