"""`ShardedSource`: what `TFRecordSource` and `WebDatasetSource` share.

A sharded source is a list of files (chunks), each holding a run of consecutive
samples, and an index per file giving each sample's byte span. This base class lists
the files (``sources/_shard_files.py``), loads or builds the indexes
(``sources/_shard_index.py``), maps sample ids to spans, reads them in runs
(``sources/_shard_reader.py``) and stacks decoded fields into batches; a subclass scans
one file into its index and decodes one sample's bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.checks import check_int
from .._core.indexing import check_index, check_indices
from ..transforms import ArraySource
from ._disk_cache import DiskCache
from ._file_store import FileStore
from ._redaction import redact
from ._shard_files import list_shards
from ._shard_index import Index, load_or_build
from ._shard_reader import ShardReader

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def check_output_shape(output_shape: Any) -> tuple[int, int] | None:
    """``output_shape`` as ``(height, width)`` ints, or ``None``.

    Raises:
        ValueError: unless it is two positive integers.
    """
    if output_shape is None:
        return None
    shape = tuple(output_shape)
    if len(shape) != 2 or not all(isinstance(s, int | np.integer) and s > 0 for s in shape):
        raise ValueError(f"output_shape must be (height, width). Received: {output_shape!r}")
    return int(shape[0]), int(shape[1])


def stack(values: list[Any], field: str, where: str) -> np.ndarray:
    """One field of a batch: arrays stacked, numbers as arrays, other values as objects.

    Raises:
        ValueError: naming the field and ``where`` when arrays differ in shape.
    """
    if values and all(isinstance(v, np.ndarray) for v in values):
        shapes = {v.shape for v in values}
        if len(shapes) > 1:
            hint = " (pass output_shape=(height, width) for images)" if len(shapes) else ""
            raise ValueError(
                f"field {field!r} has arrays of shapes {sorted(shapes)} in one batch of "
                f"{where}; they cannot be stacked{hint}"
            )
        return np.stack(values)
    if values and all(isinstance(v, int | np.integer) for v in values):
        return np.array(values, dtype=np.int64)
    if values and all(isinstance(v, float | int | np.number) for v in values):
        return np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class ShardedSource(ArraySource):
    """Base class of sources whose samples are spans of shard files (see the module).

    Subclasses set ``what`` (how messages name a file), ``index_kind`` (the index
    format and its version) and implement `accept`, `scan` and `decode`.
    """

    what = "shard"
    index_kind = ""

    def _open(
        self,
        spec: str | os.PathLike | Sequence[str | os.PathLike],
        filesystem: pafs.FileSystem | None,
        cache_dir: str | os.PathLike | None,
        cache_dir_bytes: int,
        chunk_cache_bytes: int,
    ) -> list[Index]:
        """Lists the files and loads their indexes; returns them, one per file."""
        self.paths_or_uri = (
            os.fspath(spec) if isinstance(spec, str | os.PathLike) else [os.fspath(p) for p in spec]
        )
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.cache_dir_bytes = cache_dir_bytes
        self.chunk_cache_bytes = check_int("chunk_cache_bytes", chunk_cache_bytes, 0)
        location, infos = list_shards(spec, filesystem, self.accept, self.what)
        disk = None if cache_dir is None else DiskCache(cache_dir, cache_dir_bytes)
        self._store = FileStore(location, disk)
        self._reader = ShardReader(self._store, infos, self.chunk_cache_bytes)
        indexes = [
            load_or_build(self._reader, k, self.index_kind, lambda k=k: self.scan(k), disk)
            for k in range(len(infos))
        ]
        counts = [len(index["span_offsets"]) for index in indexes]
        # _starts[k]: the first sample id of file k; _starts[-1]: the number of samples.
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._span_offsets = np.concatenate([i["span_offsets"] for i in indexes]).astype(np.int64)
        self._span_lengths = np.concatenate([i["span_lengths"] for i in indexes]).astype(np.int64)
        if len(self) == 0:
            raise ValueError(
                f"the {self.what} files of {redact(str(self.paths_or_uri))!r} hold no samples"
            )
        return indexes

    # -- what subclasses provide ------------------------------------------------------

    def accept(self, name: str) -> bool:
        """Whether a file name found in a directory is one of the source's files."""
        raise NotImplementedError

    def scan(self, k: int) -> Index:
        """Builds the index of file ``k``: at least ``span_offsets`` and ``span_lengths``."""
        raise NotImplementedError

    def decode(self, i: int, data: bytes) -> dict[str, Any]:
        """Decodes sample ``i`` from the bytes of its span into its fields."""
        raise NotImplementedError

    @property
    def fields(self) -> list[str]:
        """The names of the fields a sample gives (one field: arrays, several: dicts)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------

    @property
    def files(self) -> list[str]:
        """The source's files, in reading order (URIs for remote files, no secrets)."""
        return [self._reader.name(k) for k in range(len(self._reader.paths))]

    @property
    def chunks(self) -> np.ndarray:
        """int64 first sample id of each chunk (each non-empty file), for
        ``shuffle="window"`` (NOTE [ Window shuffle ] in ``pipeline/window_order.py``)."""
        starts = self._starts[:-1]
        return starts[np.diff(self._starts) > 0].copy()

    def locate(self, i: int) -> tuple[int, int]:
        """``(file, sample number in the file)`` of sample ``i``."""
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return k, i - int(self._starts[k])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read_rows(self, ids: np.ndarray) -> tuple[list[Any], str]:
        """Samples ``ids`` (int64 array) decoded, in that order, and a name for errors
        (the first file read)."""
        files = np.searchsorted(self._starts, ids, side="right") - 1
        blobs = self._reader.read(files, self._span_offsets[ids], self._span_lengths[ids])
        rows = [self.decode(int(i), data) for i, data in zip(ids, blobs, strict=True)]
        return rows, self._reader.name(int(files[0])) if len(ids) else repr(self)

    def read_fields(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Fields of samples ``ids`` (int64 array) as batch arrays, in that order."""
        rows, where = self.read_rows(ids)
        return {f: stack([row[f] for row in rows], f, where) for f in self.fields}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            ids = np.array([check_index(key, len(self))], dtype=np.int64)
            fields = {name: values[0] for name, values in self.read_fields(ids).items()}
        else:
            if isinstance(key, slice):
                ids = np.arange(*key.indices(len(self)), dtype=np.int64)
            else:
                ids = check_indices(key, len(self))
            fields = self.read_fields(ids)
        return fields[self.fields[0]] if len(fields) == 1 else fields

    def storage_config(self) -> dict[str, Any]:
        """The constructor arguments about storage, for subclasses' ``get_config``.

        Raises:
            ValueError: if the source was given a filesystem object.
        """
        self._store.check_saveable(type(self).__name__)
        return {
            "cache_dir": self.cache_dir,
            "cache_dir_bytes": self.cache_dir_bytes,
            "chunk_cache_bytes": self.chunk_cache_bytes,
        }

    def __repr__(self) -> str:
        files = len(self._reader.paths) if hasattr(self, "_reader") else "?"
        samples = len(self) if hasattr(self, "_starts") else "?"
        return (
            f"{type(self).__name__}({redact(str(self.paths_or_uri))!r}, {files} files, "
            f"{samples} samples, fields={self.fields})"
        )
