"""`ParquetSource`: rows of Parquet files as an array-like source (pyarrow).

NOTE [ Row groups ]
A Parquet file is read by row group. The source indexes the row groups of all its
files once (from the file footers), reads only the groups a request touches, and keeps
recently decoded groups up to a byte budget (least recently used dropped): consecutive
batches inside one group decode it once, and shuffled reads of a file that fits the
budget decode each group once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._base import ArraySource, check_index, check_indices


def _to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as numpy; fixed-size lists (nested too) become n-d arrays."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        # .values ignores the slice offset; flatten() honours it.
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


class ParquetSource(ArraySource):
    """Rows of one Parquet file, or of a directory of them, as an array-like source.

    Args:
        path: a ``.parquet`` file or a directory (its ``*.parquet`` files, sorted by
            name, are concatenated).
        columns: column names to read; a single name (or a one-column list) gives
            arrays, several give dicts of arrays. ``None``: all columns.
        cache_bytes: budget for decoded row groups kept per process (at least the
            group last read is always kept).

    Raises:
        FileNotFoundError: if ``path`` does not exist or a directory holds no files.
        ValueError: if a file is not Parquet, or files disagree on the columns.
        KeyError: for a column that is not in the files (the message lists them).

    Example:
        >>> rows = ParquetSource("train.parquet", columns=["image", "label"])  # doctest: +SKIP
        >>> rows[[7, 3]]["image"].shape                                        # doctest: +SKIP
        (2, 28, 28)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        columns: str | list[str] | None = None,
        cache_bytes: int = 256 * 2**20,
    ) -> None:
        self.path = os.fspath(path)
        self.cache_bytes = cache_bytes
        if os.path.isdir(self.path):
            names = sorted(n for n in os.listdir(self.path) if n.endswith(".parquet"))
            self.files = [os.path.join(self.path, n) for n in names]
            if not self.files:
                raise FileNotFoundError(f"no .parquet files in directory {self.path}")
        elif os.path.exists(self.path):
            self.files = [self.path]
        else:
            raise FileNotFoundError(f"Parquet path not found: {self.path}")
        self._handles: dict[int, pq.ParquetFile] = {}
        self._pid: int | None = None
        schema_names: list[str] | None = None
        groups: list[tuple[int, int, int]] = []  # (file, group, rows)
        for i, name in enumerate(self.files):
            metadata = self._file(i).metadata
            names = metadata.schema.to_arrow_schema().names
            if schema_names is None:
                schema_names = names
            elif names != schema_names:
                raise ValueError(
                    f"{name} has columns {names}, but {self.files[0]} has {schema_names}"
                )
            groups += [
                (i, g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)
            ]
        self.available_columns = schema_names or []
        wanted = [columns] if isinstance(columns, str) else list(columns or self.available_columns)
        missing = [c for c in wanted if c not in self.available_columns]
        if missing:
            raise KeyError(
                f"columns {missing} not in {self.path}; available: {self.available_columns}"
            )
        self.columns = wanted
        self._groups = [(f, g) for f, g, _ in groups]
        rows = np.array([n for _, _, n in groups], dtype=np.int64)
        # starts[k] is the first global row of group k; starts[-1] the total.
        self._starts = np.concatenate([[0], np.cumsum(rows)])
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def _file(self, index: int) -> pq.ParquetFile:
        if self._pid != os.getpid():
            self._handles, self._cache, self._pid = {}, OrderedDict(), os.getpid()
        handle = self._handles.get(index)
        if handle is None:
            try:
                handle = pq.ParquetFile(self.files[index])
            except (pa.ArrowInvalid, OSError) as error:
                raise ValueError(
                    f"{self.files[index]} is not a readable Parquet file: {error}"
                ) from error
            self._handles[index] = handle
        return handle

    @property
    def num_row_groups(self) -> int:
        return len(self._groups)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _group(self, k: int) -> dict[str, np.ndarray]:
        if self._pid == os.getpid() and k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        f, g = self._groups[k]
        table = self._file(f).read_row_group(g, columns=self.columns)
        decoded = {c: _to_numpy(table.column(c)) for c in self.columns}
        self._cache[k] = decoded
        cached = sum(a.nbytes for group in self._cache.values() for a in group.values())
        while len(self._cache) > 1 and cached > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            cached -= sum(a.nbytes for a in dropped.values())
        return decoded

    def _read_sorted(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``ids`` (sorted, unique), reading only the row groups they touch."""
        if len(ids) == 0:
            return {c: v[:0] for c, v in self._group(0).items()}
        group_of = np.searchsorted(self._starts, ids, side="right") - 1
        parts: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        bounds = np.flatnonzero(np.diff(group_of)) + 1
        for chunk in np.split(np.arange(len(ids)), bounds):
            if len(chunk) == 0:
                continue
            k = int(group_of[chunk[0]])
            local = ids[chunk] - self._starts[k]
            decoded = self._group(k)
            contiguous = local[-1] - local[0] + 1 == len(local)
            for c in self.columns:
                col = decoded[c]
                parts[c].append(col[local[0] : local[-1] + 1] if contiguous else col[local])
        # A single part is still copied: cached group arrays must not leak out.
        return {c: np.concatenate(p) if len(p) > 1 else p[0].copy() for c, p in parts.items()}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            i = check_index(key, len(self))
            rows = self._read_sorted(np.array([i]))
            out: Any = {c: v[0] for c, v in rows.items()}
        else:
            if isinstance(key, slice):
                ids = np.arange(*key.indices(len(self)))
            else:
                ids = check_indices(key, len(self))
            unique, inverse = np.unique(ids, return_inverse=True)
            rows = self._read_sorted(unique)
            if len(unique) != len(ids) or not np.array_equal(unique, ids):
                rows = {c: v[inverse.ravel()] for c, v in rows.items()}
            out = rows
        return out[self.columns[0]] if len(self.columns) == 1 else out

    def get_config(self) -> dict[str, Any]:
        return {"path": self.path, "columns": self.columns, "cache_bytes": self.cache_bytes}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_handles={}, _cache=OrderedDict(), _pid=None)
        return state

    def __repr__(self) -> str:
        return f"ParquetSource({self.path!r}, columns={self.columns}, rows={len(self)})"
