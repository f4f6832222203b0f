"""`ParquetSource`: rows of Parquet files, local or in object storage, as a source.

NOTE [ Row groups ]
A Parquet file is read by row group. The source lists its files and reads their footers
once, in the process that builds it, one file open at a time (the row counts that map
sample ids to files are in the footers; the footers, not handles, travel with it to
worker processes), and then reads only the row groups a request touches, opening only
the files they are in, at most ``max_open_files`` at once (NOTE [ Open file handles ]
in ``sources/_open_files.py``): a local file through pyarrow's native
reader, a remote one by ranged reads of exactly the column chunks asked for (through a
`FileStore`: retries, optional disk cache; NOTE [ Remote files in worker processes ] in
``sources/_locations.py``). Decoded groups are kept up to a byte budget (least
recently used dropped), as numpy views of Arrow's buffers (fixed-size lists included,
no copy); a batch is the one copy, made straight into the batch's arrays.

NOTE [ Row-group decoding threads ]
Groups are decoded on a small thread pool of the reading process (pyarrow releases the
GIL while decoding), started lazily and again after a fork. A request that touches
several groups decodes them in parallel. When local requests arrive in order (each
starting where the last one stopped) the next groups are decoded ahead while the
current batch is consumed, as ``read_table`` decodes groups on every core. Remote
sources never read ahead: each process fetches only the groups its batches touch.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .._core.indexing import check_index, check_indices
from ..transforms import ArraySource
from ._disk_cache import DiskCache
from ._file_store import FileStore, version_of
from ._locations import resolve
from ._open_files import OpenFiles
from ._redaction import redact

DECODE_THREADS = 2
READAHEAD_GROUPS = 2

# A decoded group: per column, its chunks as (first row in the group, array).
Decoded = dict[str, list[tuple[int, np.ndarray]]]


def _to_numpy(array: pa.Array) -> np.ndarray:
    """One Arrow chunk as numpy, without copying where Arrow's layout allows it.

    Fixed-size lists (nested too) become n-d arrays: their child values, sliced to the
    chunk, are the flat data (the layout keeps ``list_size`` slots per row, null or not).
    """
    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        size = array.type.list_size
        shape.append(size)
        array = array.values.slice(array.offset * size, len(array) * size)
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def _nbytes(decoded: Decoded) -> int:
    return sum(a.nbytes for chunks in decoded.values() for _, a in chunks)


class _RangeFile:
    """A read-only Python file over a remote object that fetches whole column chunks.

    pyarrow asks for each column chunk with one read; the chunk is fetched (or taken from
    the disk cache) as one ranged request, so the bytes fetched are the column chunks of
    the row groups read, nothing more.
    """

    def __init__(
        self, store: FileStore, path: str, size: int, version: str, chunks: list[tuple[int, int]]
    ) -> None:
        self.store, self.path, self.size, self.version = store, path, size, version
        self.chunks = sorted(chunks)  # (offset, length) of every column chunk we may read
        self.starts = [offset for offset, _ in self.chunks]
        self.position = 0
        self.closed = False

    def read(self, nbytes: int = -1) -> bytes:
        start = self.position
        stop = self.size if nbytes < 0 else min(self.size, start + nbytes)
        k = bisect.bisect_right(self.starts, start) - 1
        if k >= 0 and stop <= self.chunks[k][0] + self.chunks[k][1]:
            offset, length = self.chunks[k]
            data = self.store.read_range(self.path, offset, length, self.version)
            data = data[start - offset : stop - offset]
        else:  # not a column chunk we know of: read just what is asked
            data = self.store.read_range(self.path, start, stop - start, self.version)
        self.position = start + len(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        base = (0, self.position, self.size)[whence]
        self.position = base + position
        return self.position

    def tell(self) -> int:
        return self.position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class ParquetSource(ArraySource):
    """Rows of one Parquet file, or of a directory of them, local or in object storage.

    Args:
        path: a ``.parquet`` file or a directory (its ``*.parquet`` files, sorted by
            name, are concatenated): a local path, a URI such as
            ``s3://bucket/prefix/`` or ``gs://bucket/file.parquet`` (with pyarrow's
            query options, e.g. ``?endpoint_override=127.0.0.1:9000&scheme=http``),
            or with ``filesystem`` a path inside it (``bucket/prefix``).
        columns: column names to read; a single name (or a one-column list) gives
            arrays, several give dicts of arrays. ``None``: all columns.
        cache_bytes: budget for decoded row groups kept per process (at least the
            groups of the last request are always kept).
        filesystem: a `pyarrow.fs.FileSystem` holding ``path`` (local, S3, GCS, HDFS,
            or fsspec through ``pyarrow.fs.PyFileSystem(FSSpecHandler(fs))``). Such a
            source pickles, but cannot be saved in a config: pass a URI for that.
        cache_dir: a local directory keeping the remote column chunks fetched, shared
            by processes (each chunk is fetched once); ``None``: no disk cache.
        cache_dir_bytes: budget of ``cache_dir``; least recently read chunks are dropped.
        max_open_files: files each process keeps open (least recently used closed
            first; a thread reading a file holds it open meanwhile), for datasets of
            more files than ``ulimit -n`` allows; remote files count their handles.

    Raises:
        FileNotFoundError: if ``path`` (or its bucket) does not exist or a directory
            holds no files, naming the URI.
        PermissionError: if access is denied, naming the URI.
        ValueError: if a file is not Parquet, files disagree on the columns, the URI is
            malformed or of an unknown scheme, ``cache_dir`` is not writable, or
            ``max_open_files`` is not an integer >= 1.
        KeyError: for a column that is not in the files (the message lists them).

    Example:
        >>> rows = ParquetSource("train.parquet", columns=["image", "label"])  # doctest: +SKIP
        >>> rows[[7, 3]]["image"].shape                                        # doctest: +SKIP
        (2, 28, 28)
        >>> remote = ParquetSource("s3://bucket/train/", columns="image",      # doctest: +SKIP
        ...                        cache_dir="/tmp/seqpipe-cache")
    """

    def __init__(
        self,
        path: str | os.PathLike,
        columns: str | list[str] | None = None,
        cache_bytes: int = 256 * 2**20,
        filesystem: pafs.FileSystem | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_dir_bytes: int = 16 * 2**30,
        max_open_files: int = 64,
    ) -> None:
        location, inner = resolve(path, filesystem)
        self.path = os.fspath(path)
        self.cache_bytes = cache_bytes
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.cache_dir_bytes = cache_dir_bytes
        disk = None if cache_dir is None else DiskCache(cache_dir, cache_dir_bytes)
        self._store = FileStore(location, disk, max_open_files)
        self.max_open_files = max_open_files
        infos = self._list(inner.rstrip("/") or inner)
        self.files = [info.path for info in infos]
        self._sizes = [info.size for info in infos]
        self._versions = [version_of(info) for info in infos]
        self._metadata = [self._read_footer(info) for info in infos]
        schema_names: list[str] | None = None
        groups: list[tuple[int, int, int]] = []  # (file, group, rows)
        for i, metadata in enumerate(self._metadata):
            names = metadata.schema.to_arrow_schema().names
            if schema_names is None:
                schema_names = names
            elif names != schema_names:
                raise ValueError(
                    f"{self._store.uri(self.files[i])} has columns {names}, but "
                    f"{self._store.uri(self.files[0])} has {schema_names}"
                )
            groups += [
                (i, g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)
            ]
        self.available_columns = schema_names or []
        wanted = [columns] if isinstance(columns, str) else list(columns or self.available_columns)
        missing = [c for c in wanted if c not in self.available_columns]
        if missing:
            raise KeyError(f"columns {missing} not in {self}; available: {self.available_columns}")
        self.columns = wanted
        self._groups = [(f, g) for f, g, _ in groups]
        rows = np.array([n for _, _, n in groups], dtype=np.int64)
        # starts[k] is the first global row of group k; starts[-1] the total.
        self._starts = np.concatenate([[0], np.cumsum(rows)])
        self._reset()

    # -- listing and footers (once, in the building process) ---------------------------

    def _list(self, inner: str) -> list[pafs.FileInfo]:
        info = self._store.info(inner)
        if info.type == pafs.FileType.File:
            return [info]
        if info.type == pafs.FileType.Directory:
            infos = [i for i in self._store.list_files(inner) if i.path.endswith(".parquet")]
            if not infos:
                raise FileNotFoundError(f"no .parquet files in directory {self._store.uri(inner)}")
            return infos
        raise FileNotFoundError(f"Parquet path not found: {self._store.uri(inner)}")

    def _read_footer(self, info: pafs.FileInfo) -> pq.FileMetaData:
        def read(fs: pafs.FileSystem) -> pq.FileMetaData:
            with self._store.opened(info.path) as handle:
                return pq.read_metadata(handle)

        try:
            return self._store.call(read, info.path)
        except pa.ArrowInvalid as error:
            raise ValueError(
                f"{self._store.uri(info.path)} is not a readable Parquet file: {error}"
            ) from None

    # -- per-process state ------------------------------------------------------------

    def _reset(self) -> None:
        """Forgets handles, threads and decoded groups (after a fork or unpickling)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # Readers by file index, leased by one thread at a time (a ParquetFile is not
        # safe to share): NOTE [ Open file handles ].
        self._readers = OpenFiles(self.max_open_files)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[int, Future] = {}
        self._cache: OrderedDict[int, Decoded] = OrderedDict()
        self._last_stop = -1

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            self._reset()

    def _open_reader(self, index: int) -> pq.ParquetFile:
        """A new reader of file ``index``, its footer taken from ``_metadata``."""
        path, metadata = self.files[index], self._metadata[index]
        if self._store.location.is_local:
            return pq.ParquetFile(path, metadata=metadata)
        chunks = [
            self._chunk_range(metadata.row_group(g).column(j))
            for g in range(metadata.num_row_groups)
            for j in range(metadata.num_columns)
        ]
        remote = _RangeFile(self._store, path, self._sizes[index], self._versions[index], chunks)
        return pq.ParquetFile(pa.PythonFile(remote, mode="r"), metadata=metadata)

    @staticmethod
    def _chunk_range(column: Any) -> tuple[int, int]:
        start = column.data_page_offset
        if column.has_dictionary_page and 0 < column.dictionary_page_offset < start:
            start = column.dictionary_page_offset
        return start, column.total_compressed_size

    def _decode(self, k: int) -> Decoded:
        f, g = self._groups[k]
        with self._readers.lease(f, lambda: self._open_reader(f)) as reader:
            table = reader.read_row_group(g, columns=self.columns, use_threads=False)
        decoded: Decoded = {}
        for c in self.columns:
            chunks, row = [], 0
            for chunk in table.column(c).chunks:
                chunks.append((row, _to_numpy(chunk)))
                row += len(chunk)
            decoded[c] = chunks
        return decoded

    def _submit(self, k: int) -> None:
        if k in self._cache or k in self._pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="seqpipe-parquet")
        self._pending[k] = self._pool.submit(self._decode, k)

    def _decoded(self, groups: list[int], ahead: range = range(0)) -> dict[int, Decoded]:
        """Groups ``groups``, decoding the missing ones in parallel, and groups ``ahead``
        submitted for decoding after them."""
        # One request at a time changes the cache: threads of a ThreadExecutor share
        # this source.
        with self._lock:
            for k in (*groups, *ahead):
                self._submit(k)
            return self._collect(groups)

    def _collect(self, groups: list[int]) -> dict[int, Decoded]:
        out = {}
        for k in groups:
            if k in self._cache:
                self._cache.move_to_end(k)
            else:
                self._cache[k] = self._pending.pop(k).result()
            out[k] = self._cache[k]
        cached = sum(_nbytes(d) for d in self._cache.values())
        while len(self._cache) > len(groups) and cached > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            cached -= _nbytes(dropped)
        return out

    # -- reading ----------------------------------------------------------------------

    @property
    def num_row_groups(self) -> int:
        return len(self._groups)

    @property
    def chunks(self) -> np.ndarray:
        """int64 first row of each non-empty row group (the chunks of
        ``shuffle="window"``, NOTE [ Window shuffle ] in ``pipeline/window_order.py``)."""
        starts = self._starts[:-1]
        return starts[np.diff(self._starts) > 0].astype(np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _read_sorted(self, ids: np.ndarray, sequential: bool) -> dict[str, np.ndarray]:
        """Rows ``ids`` (sorted, unique) as new arrays, reading only the groups they touch."""
        self._check_process()
        if len(ids) == 0:
            return {c: chunks[0][1][:0].copy() for c, chunks in self._decoded([0])[0].items()}
        group_of = np.searchsorted(self._starts, ids, side="right") - 1
        bounds = np.flatnonzero(np.diff(group_of)) + 1
        runs = np.split(np.arange(len(ids)), bounds)
        groups = [int(group_of[run[0]]) for run in runs]
        ahead = range(0)
        if sequential and self._store.location.is_local:
            ahead = range(groups[-1] + 1, min(groups[-1] + 1 + READAHEAD_GROUPS, len(self._groups)))
        decoded = self._decoded(groups, ahead)
        first = decoded[groups[0]]
        out = {
            c: np.empty((len(ids), *chunks[0][1].shape[1:]), chunks[0][1].dtype)
            for c, chunks in first.items()
        }
        position = 0
        for k, run in zip(groups, runs, strict=True):
            local = ids[run] - self._starts[k]
            for c, chunks in decoded[k].items():
                self._gather(chunks, local, out[c][position : position + len(run)])
            position += len(run)
        return out

    @staticmethod
    def _gather(chunks: list[tuple[int, np.ndarray]], local: np.ndarray, out: np.ndarray) -> None:
        """Copies rows ``local`` (sorted) of a chunked column into ``out``."""
        starts = [row for row, _ in chunks]
        chunk_of = np.searchsorted(starts, local, side="right") - 1
        cuts = np.flatnonzero(np.diff(chunk_of)) + 1
        position = 0
        for piece in np.split(local, cuts):
            row, array = chunks[int(chunk_of[position])]
            rows = piece - row
            target = out[position : position + len(piece)]
            if rows[-1] - rows[0] + 1 == len(rows):
                target[...] = array[rows[0] : rows[-1] + 1]
            else:
                np.take(array, rows, axis=0, out=target)
            position += len(piece)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            i = check_index(key, len(self))
            rows = self._read_sorted(np.array([i]), sequential=False)
            out: Any = {c: v[0] for c, v in rows.items()}
        else:
            sequential = False
            if isinstance(key, slice):
                start, stop, step = key.indices(len(self))
                ids = np.arange(start, stop, step)
                sequential = step == 1 and start == self._last_stop
                self._last_stop = stop if step == 1 else -1
            else:
                ids = check_indices(key, len(self))
            unique, inverse = np.unique(ids, return_inverse=True)
            rows = self._read_sorted(unique, sequential)
            if len(unique) != len(ids) or not np.array_equal(unique, ids):
                rows = {c: v[inverse.ravel()] for c, v in rows.items()}
            out = rows
        return out[self.columns[0]] if len(self.columns) == 1 else out

    # -- saving -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Returns the arguments that rebuild this source.

        Raises:
            ValueError: if it was given a filesystem object, which a config cannot hold.
        """
        self._store.check_saveable("ParquetSource")
        return {
            "path": self.path,
            "columns": self.columns,
            "cache_bytes": self.cache_bytes,
            "cache_dir": self.cache_dir,
            "cache_dir_bytes": self.cache_dir_bytes,
            "max_open_files": self.max_open_files,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_readers", "_pool", "_pending", "_cache", "_pid"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        filesystem = self._store.location.filesystem
        on = "" if filesystem is None else f", filesystem={type(filesystem).__name__}"
        rows = f", rows={len(self)}" if hasattr(self, "_starts") else ""
        columns = getattr(self, "columns", None)
        return f"ParquetSource({redact(self.path)!r}{on}, columns={columns}{rows})"
