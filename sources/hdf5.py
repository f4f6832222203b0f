"""`HDF5Matrix`: an HDF5 dataset as a fork-safe, picklable, array-like source.

NOTE [ HDF5 handles and worker processes ]
An h5py file handle must never cross a fork or a pickle: HDF5's library state is
per-process. The matrix keeps only the path and dataset name in its state, and opens
its own handle lazily in each process (checked by pid on every access).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from .._core.indexing import check_index, check_indices, contiguous_runs
from ..transforms import ArraySource
from .hdf5_raw import RawRows


class HDF5Matrix(ArraySource):
    """Representation of an HDF5 dataset to be used instead of a numpy array.

    Args:
        datapath: path of the HDF5 file.
        dataset: name of the dataset inside the file.
        start: first row of the dataset to expose.
        end: row past the last one to expose (``None``: the dataset's end).
        normalizer: callable applied to every array read.

    Raises:
        FileNotFoundError: if ``datapath`` does not exist.
        ValueError: if it is not an HDF5 file.
        KeyError: if ``dataset`` is not in the file (the message lists what is).
        ValueError: if ``start``/``end`` do not fit the dataset.

    Example:
        >>> x = HDF5Matrix("data.h5", "images", start=0, end=100)  # doctest: +SKIP
        >>> x[[5, 1, 5]].shape                                       # doctest: +SKIP
        (3, 32, 32, 3)
    """

    def __init__(
        self,
        datapath: str | os.PathLike,
        dataset: str,
        start: int = 0,
        end: int | None = None,
        normalizer: Callable | None = None,
    ) -> None:
        self.datapath = os.fspath(datapath)
        self.dataset = dataset
        self.normalizer = normalizer
        self._file: h5py.File | None = None
        self._dset: h5py.Dataset | None = None
        self._raw: RawRows | None = None
        self._pid: int | None = None
        data = self.data  # opens the file: errors surface here, not in a worker
        if data.ndim == 0:
            raise ValueError(f"dataset {dataset!r} in {self.datapath} is a scalar, not an array")
        total = data.shape[0]
        stop = total if end is None else end
        if not (0 <= start <= stop <= total):
            raise ValueError(
                f"start={start}, end={end} do not fit dataset {dataset!r} of {total} rows"
            )
        self.start = int(start)
        self.end = int(stop)
        if normalizer is not None and self.end > self.start:
            first = np.asarray(normalizer(data[self.start : self.start + 1]))
            self._base_shape, self._base_dtype = first.shape[1:], first.dtype
        else:
            self._base_shape, self._base_dtype = data.shape[1:], data.dtype

    @property
    def data(self) -> h5py.Dataset:
        """The h5py dataset, opened by and for the current process."""
        if self._pid != os.getpid():
            self._open()
        return self._dset

    def _open(self) -> None:
        # A handle inherited through fork is not ours to use; drop it unclosed.
        self._file = self._dset = self._raw = None
        if not os.path.exists(self.datapath):
            raise FileNotFoundError(f"HDF5 file not found: {self.datapath}")
        try:
            handle = h5py.File(self.datapath, "r")
        except OSError as error:
            raise ValueError(f"{self.datapath} is not a readable HDF5 file: {error}") from error
        if self.dataset not in handle:
            names: list[str] = []
            handle.visit(names.append)
            handle.close()
            raise KeyError(
                f"dataset {self.dataset!r} not found in {self.datapath}; it holds {names}"
            )
        # The dataset object is cached: looking it up by name costs ~30 us per read.
        self._file, self._dset, self._pid = handle, handle[self.dataset], os.getpid()
        self._raw = RawRows.open(self.datapath, self._dset)

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the exposed rows, after the normalizer."""
        return (len(self), *self._base_shape)

    @property
    def dtype(self) -> np.dtype:
        """Dtype after the normalizer."""
        return self._base_dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            # Row selection goes through the fast paths; the rest applies to the result.
            rows = key[0] if key else slice(None)
            out = self[rows]
            rest = key[1:]
            return out[rest] if isinstance(rows, int | np.integer) else out[(slice(None), *rest)]
        out = self._read(key)
        return out if self.normalizer is None else self.normalizer(out)

    def read_into(self, key: Any, out: np.ndarray) -> np.ndarray:
        """Reads rows ``key`` (a slice or an index array) straight into ``out``.

        Without a normalizer h5py fills ``out`` in place (``read_direct``): the
        enqueuer passes a view of shared memory, so rows go from the file to the
        consumer with one copy.

        Args:
            key: a slice, an index list/array or a boolean mask.
            out: a C-contiguous array of shape ``(rows, *shape[1:])`` and this
                matrix's dtype.

        Returns:
            ``out``.

        Raises:
            ValueError: if ``out`` has the wrong shape, dtype or layout.
            IndexError: if an index is out of range.

        Example:
            >>> x = HDF5Matrix("data.h5", "images")               # doctest: +SKIP
            >>> out = np.empty((4, *x.shape[1:]), x.dtype)        # doctest: +SKIP
            >>> x.read_into(slice(8, 12), out) is out             # doctest: +SKIP
            True
        """
        if isinstance(key, int | np.integer | tuple):
            raise TypeError(f"read_into takes a slice or an index array. Received: {key!r}")
        if not (
            isinstance(out, np.ndarray)
            and out.shape[1:] == self.shape[1:]
            and out.dtype == self.dtype
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            raise ValueError(
                f"out must be a writable C-contiguous array of shape (rows, "
                f"{', '.join(map(str, self.shape[1:]))}) and dtype {self.dtype}. "
                f"Received: {type(out).__name__} of shape {getattr(out, 'shape', None)} "
                f"and dtype {getattr(out, 'dtype', None)}"
            )
        if self.normalizer is not None:
            np.copyto(out, self[key])
            return out
        self._read(key, out)
        return out

    def _read(self, key: Any, out: np.ndarray | None = None) -> Any:
        data = self.data
        if isinstance(key, int | np.integer):
            return data[self.start + check_index(key, len(self))]
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step == 1:
                if out is not None:
                    self._check_rows(out, max(0, hi - lo))
                return self._read_runs(data, [(lo, hi)] if hi > lo else [], out)
            if step > 0:
                rows = slice(self.start + lo, self.start + max(lo, hi), step)
                if out is None:
                    return data[rows]
                self._check_rows(out, len(range(lo, max(lo, hi), step)))
                if len(out):
                    data.read_direct(out, source_sel=np.s_[rows])
                return out
            key = np.arange(lo, hi, step)
        ids = check_indices(key, len(self))
        if out is not None:
            self._check_rows(out, len(ids))
        if self._raw is not None:
            # Raw reads address any row: runs in request order land where they belong,
            # with no sort, no scatter and no second buffer (contiguous_runs splits any
            # order wherever ids do not step by one).
            return self._read_runs(data, contiguous_runs(ids), out)
        # h5py needs sorted unique indices and reads them one element at a time; read
        # the unique ids as contiguous runs instead, then scatter into request order.
        unique, inverse = np.unique(ids, return_inverse=True)
        runs = contiguous_runs(unique)
        if len(unique) == len(ids) and np.array_equal(unique, ids):
            return self._read_runs(data, runs, out)
        buf = self._read_runs(data, runs)
        if out is None:
            return buf[inverse.ravel()]
        return np.take(buf, inverse.ravel(), axis=0, out=out)

    @staticmethod
    def _check_rows(out: np.ndarray, rows: int) -> None:
        if len(out) != rows:
            raise ValueError(f"out has {len(out)} rows for a read of {rows} rows")

    def _read_runs(
        self, data: h5py.Dataset, runs: list[tuple[int, int]], out: np.ndarray | None = None
    ) -> np.ndarray:
        # One buffer for all runs, each read in place: as plain bytes when the dataset
        # allows it (NOTE [ Raw row reads ] in hdf5_raw.py), else with h5py's low-level
        # calls (read_direct builds Python selection objects per call: ~25% slower).
        row = data.shape[1:]
        buf = np.empty((sum(hi - lo for lo, hi in runs), *row), data.dtype) if out is None else out
        raw = self._raw
        flat = memoryview(buf.reshape(-1).view(np.uint8)) if raw is not None else None
        zeros = (0,) * len(row)
        file_space = memory_space = None
        pos = 0
        for lo, hi in runs:
            if hi <= lo:
                continue
            if raw is not None:
                target = flat[pos * raw.row_bytes : (pos + hi - lo) * raw.row_bytes]
                if raw.read(self.start + lo, self.start + hi, target):
                    pos += hi - lo
                    continue
            if file_space is None:
                file_space = data.id.get_space()
                memory_space = h5py.h5s.create_simple(buf.shape)
            file_space.select_hyperslab((self.start + lo, *zeros), (hi - lo, *row))
            memory_space.select_hyperslab((pos, *zeros), (hi - lo, *row))
            data.id.read(memory_space, file_space, buf)
            pos += hi - lo
        return buf

    def close(self) -> None:
        """Closes this process's file handle (it is reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
            if self._raw is not None:
                self._raw.close()
        self._file = self._dset = self._pid = self._raw = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = state["_dset"] = state["_pid"] = state["_raw"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"HDF5Matrix({self.datapath!r}, {self.dataset!r}, start={self.start}, "
            f"end={self.end}, shape={self.shape}, dtype={self.dtype})"
        )
