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

from ._base import ArraySource, check_index, check_indices, contiguous_runs


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
        self._file = self._dset = None
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

    def _read(self, key: Any) -> Any:
        data = self.data
        if isinstance(key, int | np.integer):
            return data[self.start + check_index(key, len(self))]
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step > 0:
                return data[self.start + lo : self.start + max(lo, hi) : step]
            key = np.arange(lo, hi, step)
        ids = check_indices(key, len(self))
        # h5py needs sorted unique indices and reads them one element at a time; read
        # the unique ids as contiguous runs instead, then scatter into request order.
        unique, inverse = np.unique(ids, return_inverse=True)
        buf = self._read_runs(data, contiguous_runs(unique))
        if len(unique) == len(ids) and np.array_equal(unique, ids):
            return buf
        return buf[inverse.ravel()]

    def _read_runs(self, data: h5py.Dataset, runs: list[tuple[int, int]]) -> np.ndarray:
        # One buffer for all runs; read_direct fills each run in place.
        buf = np.empty((sum(hi - lo for lo, hi in runs), *data.shape[1:]), dtype=data.dtype)
        pos = 0
        for lo, hi in runs:
            if hi > lo:
                data.read_direct(
                    buf,
                    source_sel=np.s_[self.start + lo : self.start + hi],
                    dest_sel=np.s_[pos : pos + hi - lo],
                )
            pos += hi - lo
        return buf

    def close(self) -> None:
        """Closes this process's file handle (it is reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._dset = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = state["_dset"] = state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"HDF5Matrix({self.datapath!r}, {self.dataset!r}, start={self.start}, "
            f"end={self.end}, shape={self.shape}, dtype={self.dtype})"
        )
