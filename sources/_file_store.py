"""`FileStore`: reads the files of one `Location`, keeping a few of this process's open
handles (NOTE [ Open file handles ] in ``sources/_open_files.py``).

Remote reads go through `FileStore.read_range` and `FileStore.read_file`. They retry
transient failures (HTTP 500/503, throttling, connection resets) with exponential
backoff and map a missing object, bucket or permission to an error naming the URI
without its secrets (`with_retries`), and they count requests and bytes per process
(`fetch_counters`, safe across threads) for the tests and benchmarks. What is pickled is the
`Location`, never a handle (NOTE [ Remote files in worker processes ] in
``sources/_locations.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from .._core.checks import check_int
from ._disk_cache import DiskCache
from ._locations import Location
from ._open_files import OpenFiles
from ._retries import with_retries

if TYPE_CHECKING:
    # Lazy for the reason given in _locations.py: worker start-up.
    import pyarrow as pa
    import pyarrow.fs as pafs

T = TypeVar("T")

# Successful fetches of this process (a retried request counts once) and their bytes,
# counted by every decoding thread: changed under the lock.
_counters = {"requests": 0, "bytes": 0}
_counters_lock = threading.Lock()


def fetch_counters() -> dict[str, int]:
    """Returns ``{"requests", "bytes"}`` fetched from remote storage by this process."""
    with _counters_lock:
        return dict(_counters)


class FileStore:
    """Reads files of one `Location`, with retries and an optional local `DiskCache`.

    Remote handles are kept for reuse (opening one costs a request), at most
    ``max_open`` of them; local files are closed after each use (opening one costs a
    system call).

    Args:
        location: where the files are.
        cache: a `DiskCache` for remote bytes, or ``None``.
        max_open: remote handles kept open by this process.

    Raises:
        ValueError: if ``max_open`` is not an integer >= 1.

    Example:
        >>> store = FileStore(Location())
        >>> store.read_file(__file__).startswith(b'"')
        True
    """

    def __init__(
        self, location: Location, cache: DiskCache | None = None, max_open: int = 64
    ) -> None:
        self.location = location
        self.cache = None if location.is_local else cache
        check_int("max_open_files", max_open, 1)
        self._handles = OpenFiles(0 if location.is_local else max_open)

    def check_saveable(self, owner: str) -> None:
        """Raises `ValueError` when the files were given by a filesystem object: a config
        holds URIs, never a filesystem (nor the credentials it may carry)."""
        filesystem = self.location.filesystem
        if filesystem is not None:
            raise ValueError(
                f"{owner} over a {type(filesystem).__name__} object cannot be saved in a "
                f"config; build it from a URI instead (e.g. "
                f"'s3://bucket/prefix?endpoint_override=host:port&scheme=http')"
            )

    def uri(self, path: str) -> str:
        """The name errors and reprs use for ``path``."""
        return self.location.name_of(path)

    def call(self, what: Callable[[pafs.FileSystem], T], path: str) -> T:
        """Runs ``what(filesystem)``, retrying transient errors, naming ``path`` in errors.

        Raises:
            FileNotFoundError: for a missing object or bucket.
            PermissionError: for denied access.
            OSError: for other failures, or transient ones that outlast the retries.
        """
        return with_retries(lambda: what(self.location.open()), lambda: self.uri(path))

    def info(self, path: str) -> pafs.FileInfo:
        """The `pyarrow.fs.FileInfo` of ``path`` (type, size, mtime)."""
        return self.call(lambda fs: fs.get_file_info(path), path)

    def missing(self, paths: list[str]) -> list[str]:
        """The names (URIs) of the files of ``paths`` that do not exist."""
        if self.location.uri is None and self.location.filesystem is None:
            return [p for p in paths if not os.path.isfile(p)]
        import pyarrow.fs as pafs

        infos = self.call(lambda fs: fs.get_file_info(paths), paths[0]) if paths else []
        return [self.uri(i.path) for i in infos if i.type != pafs.FileType.File]

    def list_files(self, root: str, recursive: bool = False) -> list[pafs.FileInfo]:
        """The files under directory ``root``, sorted by path.

        Raises:
            FileNotFoundError: if ``root`` is missing (or an empty prefix).
        """
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(root.rstrip("/") or "/", recursive=recursive)
        infos = self.call(lambda fs: fs.get_file_info(selector), root)
        return sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path)

    @contextmanager
    def opened(self, path: str, fresh: bool = False) -> Iterator[pa.NativeFile]:
        """A random-access handle on ``path`` for this thread, until the block ends: an
        idle one of this process (unless ``fresh``), or a new one. A handle whose block
        raised is closed, never reused. Use it inside `call`."""

        def opener() -> pa.NativeFile:
            return self.location.open().open_input_file(path)

        with self._handles.lease(path, opener, fresh) as handle:
            yield handle

    def _fetch(self, path: str, offset: int, length: int | None) -> bytes:
        def read(fs: pafs.FileSystem) -> bytes:
            if length is None:
                with fs.open_input_stream(path) as stream:
                    return stream.read()
            try:
                with self.opened(path) as handle:
                    return handle.read_at(length, offset)
            except OSError:
                # A kept handle on an object since deleted or replaced fails obscurely;
                # a new one fails naming the cause (or reads the new object).
                with self.opened(path, fresh=True) as handle:
                    return handle.read_at(length, offset)

        data = self.call(read, path)
        with _counters_lock:
            _counters["requests"] += 1
            _counters["bytes"] += len(data)
        return data

    def read_range(self, path: str, offset: int, length: int, version: str) -> bytes:
        """Bytes ``[offset, offset + length)`` of ``path``, from the cache when it has them.

        Args:
            path: file path inside the location.
            offset: first byte.
            length: number of bytes.
            version: what identifies this version of the file in the cache (`version_of`).
        """
        if self.cache is None:
            return self._fetch(path, offset, length)
        key = (self.location.uri or "", path, version, offset, length)
        return self.cache.get(key, lambda: self._fetch(path, offset, length))

    def read_file(self, path: str, version: str = "") -> bytes:
        """All bytes of ``path`` (local files are read directly, never cached).

        Args:
            path: file path inside the location.
            version: what identifies this version of the file in the cache.
        """
        if self.location.is_local and self.location.filesystem is None:
            try:
                with open(path, "rb") as file:
                    return file.read()
            except FileNotFoundError:
                raise FileNotFoundError(f"not found: {path}") from None
        if self.cache is None:
            return self._fetch(path, 0, None)
        key = (self.location.uri or "", path, version)
        return self.cache.get(key, lambda: self._fetch(path, 0, None))


def version_of(info: pafs.FileInfo) -> str:
    """What tells two versions of a file apart in cache keys: its size and mtime."""
    mtime = info.mtime_ns if info.mtime_ns is not None else ""
    return f"{info.size}:{mtime}"
