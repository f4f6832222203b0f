"""`ShardReader`: the bytes of samples stored as spans of shard files, local or remote.

NOTE [ Reading spans of shards ]
A sharded source knows, from its index, the byte span of every sample in its file. A
request for many samples becomes one read per *run*: spans of one file that follow each
other, with gaps of at most `MAX_GAP` bytes (tar headers and padding between samples),
are fetched together and cut apart here. So a batch of consecutive samples costs one
ranged GET per file it touches, and a random batch one GET per sample (never more).
Local files are memory-mapped by each process instead (the page cache is the cache).

With ``chunk_cache_bytes`` (remote files only), the first request touching a file
fetches the whole file in one GET and keeps it in this process, least recently used
dropped beyond the budget: meant for ``shuffle="window"``, where a worker reads the
chunks of its window again and again (NOTE [ Window shuffle ] in
``pipeline/window_order.py``). All reads go through the `FileStore`: retries with
backoff, errors naming the URI, request counters, and ``cache_dir``'s `DiskCache`, whose
per-entry file lock makes the whole-file fetch one GET per host when several worker
processes touch the same chunk (they all do: every batch of a window draws from all of
its chunks, and the enqueuer hands batches to whichever worker is free).
"""

from __future__ import annotations

import io
import mmap
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ._file_store import FileStore, version_of

if TYPE_CHECKING:
    import pyarrow.fs as pafs

MAX_GAP = 64 << 10  # bytes between spans that are fetched rather than split into 2 GETs
SCAN_BLOCK = 64 << 20  # bytes per ranged read while an index is built over a remote file


class _Blocks(io.RawIOBase):
    """A seekable read-only file over a remote object, fetched ``SCAN_BLOCK`` at a time.

    Index scans read headers and seek over the data; a shard smaller than a block is
    one GET whatever the scan does.
    """

    def __init__(self, reader: ShardReader, k: int) -> None:
        self.reader, self.k = reader, k
        self.size = reader.sizes[k]
        self.position = 0
        self.block: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = (0, self.position, self.size)[whence] + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size:
            return 0
        first = self.position - self.position % SCAN_BLOCK
        if self.block[0] != first:
            length = min(SCAN_BLOCK, self.size - first)
            self.block = (first, self.reader.read_span(self.k, first, length))
        data = self.block[1]
        piece = data[self.position - first : self.position - first + len(buffer)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


class ShardReader:
    """Reads byte spans of a list of files; picklable, per-process handles.

    Args:
        store: the `FileStore` of the files' location.
        infos: the files' `pyarrow.fs.FileInfo` (paths inside the location, sizes).
        chunk_cache_bytes: keep whole remote files up to this many bytes per process,
            fetching a file whole on first touch; 0: fetch only the spans asked for.

    Example:
        >>> import pyarrow.fs as pafs
        >>> from seqpipe.sources._locations import Location
        >>> reader = ShardReader(FileStore(Location()), [pafs.LocalFileSystem()
        ...     .get_file_info(__file__)], 0)
        >>> reader.read(np.array([0, 0]), np.array([4, 9]), np.array([5, 6]))
        [b'Shard', b'Reader']
    """

    def __init__(
        self, store: FileStore, infos: list[pafs.FileInfo], chunk_cache_bytes: int = 0
    ) -> None:
        self.store = store
        self.paths = [info.path for info in infos]
        self.sizes = [int(info.size) for info in infos]
        self.versions = [version_of(info) for info in infos]
        self.chunk_cache_bytes = chunk_cache_bytes
        location = store.location
        self.native = location.filesystem is None and location.is_local
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._maps: dict[int, mmap.mmap] = {}
        self._whole: OrderedDict[int, bytes] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_pid", "_maps", "_whole"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def name(self, k: int) -> str:
        """The printable name (a URI without secrets) of file ``k``."""
        return self.store.uri(self.paths[k])

    def open_sequential(self, k: int) -> BinaryIO:
        """A seekable binary file over file ``k``, for building its index."""
        if self.native:
            return open(self.paths[k], "rb")
        return io.BufferedReader(_Blocks(self, k), buffer_size=1 << 16)

    def read_span(
        self, k: int, offset: int, length: int, keep: frozenset[int] = frozenset()
    ) -> bytes:
        """Bytes ``[offset, offset + length)`` of file ``k``; whole files that ``keep``
        names stay in memory whatever the budget (a request needs them all)."""
        if self._pid != os.getpid():
            self._reset()
        if self.native:
            return self._map(k)[offset : offset + length]
        if 0 < self.sizes[k] <= self.chunk_cache_bytes:
            return self._whole_file(k, keep)[offset : offset + length]
        return self.store.read_range(self.paths[k], offset, length, self.versions[k])

    def _map(self, k: int) -> mmap.mmap | bytes:
        mapped = self._maps.get(k)
        if mapped is None:
            if self.sizes[k] == 0:
                return b""
            with open(self.paths[k], "rb") as file:
                mapped = self._maps[k] = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        return mapped

    def _whole_file(self, k: int, keep: frozenset[int]) -> bytes:
        data = self._whole.get(k)
        if data is not None:
            self._whole.move_to_end(k)
            return data
        size = self.sizes[k]
        data = self._whole[k] = self.store.read_range(self.paths[k], 0, size, self.versions[k])
        # Least recently used first, sparing the files of the request being read: at a
        # window's boundary a batch needs the chunks of two windows at once.
        total = sum(len(d) for d in self._whole.values())
        for old in [j for j in self._whole if j not in keep and j != k]:
            if total <= self.chunk_cache_bytes:
                break
            total -= len(self._whole.pop(old))
        return data

    def read(self, files: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> list[bytes]:
        """The bytes of spans ``(files[i], offsets[i], lengths[i])``, in that order.

        One read per run of nearby spans of a file (NOTE [ Reading spans of shards ]).
        """
        out: list[bytes] = [b""] * len(files)
        keep = frozenset(np.unique(files).tolist())
        order = np.lexsort((offsets, files))
        run: list[int] = []
        for i in order.tolist():
            if run and (
                files[i] != files[run[0]]
                or offsets[i] > offsets[run[-1]] + lengths[run[-1]] + MAX_GAP
            ):
                self._read_run(run, files, offsets, lengths, out, keep)
                run = []
            run.append(i)
        if run:
            self._read_run(run, files, offsets, lengths, out, keep)
        return out

    def _read_run(
        self,
        run: list[int],
        files: np.ndarray,
        offsets: np.ndarray,
        lengths: np.ndarray,
        out: list[bytes],
        keep: frozenset[int],
    ) -> None:
        start = int(offsets[run[0]])
        stop = max(int(offsets[i] + lengths[i]) for i in run)
        data = self.read_span(int(files[run[0]]), start, stop - start, keep)
        for i in run:
            lo = int(offsets[i]) - start
            out[i] = data[lo : lo + int(lengths[i])]
