"""What every source shares: index normalisation, ``|`` with transforms, wrapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def check_index(index: Any, length: int) -> int:
    """Returns ``index`` as a non-negative int, wrapping negatives like Python lists.

    Raises:
        IndexError: if it is out of ``[-length, length)``.
    """
    i = int(index)
    if not -length <= i < length:
        raise IndexError(f"index {i} is out of range for {length} samples")
    return i + length if i < 0 else i


def check_indices(indices: Any, length: int) -> np.ndarray:
    """Returns an index list/array/mask as int64 positions with negatives wrapped.

    Raises:
        IndexError: if any position is out of range, or a boolean mask has the wrong
            length.
        TypeError: if the array is not of integers or booleans.
    """
    ids = np.asarray(indices)
    if ids.dtype == bool:
        if ids.shape != (length,):
            raise IndexError(f"boolean mask of shape {ids.shape} for {length} samples")
        return np.flatnonzero(ids)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"index arrays must hold integers. Received dtype {ids.dtype}")
    ids = ids.astype(np.int64).ravel()
    bad = (ids < -length) | (ids >= length)
    if bad.any():
        raise IndexError(f"index {int(ids[bad][0])} is out of range for {length} samples")
    return np.where(ids < 0, ids + length, ids)


def contiguous_runs(sorted_ids: np.ndarray) -> list[tuple[int, int]]:
    """Splits sorted unique ids into ``(start, stop)`` runs of consecutive values.

    Example:
        >>> contiguous_runs(np.array([1, 2, 3, 7, 9, 10]))
        [(1, 4), (7, 8), (9, 11)]
    """
    if len(sorted_ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_ids) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(sorted_ids)]])
    return [
        (int(sorted_ids[a]), int(sorted_ids[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)
    ]


class ArraySource:
    """Mixin for array-like sources: ``source | transform`` returns a wrapped source."""

    def __or__(self, transform: Callable) -> TransformedSource:
        return TransformedSource(self, transform)


class TransformedSource(ArraySource):
    """An array-like source whose every read goes through ``transform``.

    A random transform (``transform.random``) gets a generator keyed by the sample ids
    read, so reading the same ids gives the same augmentation, whatever the epoch; put
    random transforms on the `pipeline.Pipeline` instead to vary them by epoch.

    Args:
        source: anything with ``len`` and int/slice/index-array ``__getitem__``.
        transform: callable applied to each slice read (and to single samples).

    Raises:
        TypeError: if ``source`` is not array-like or ``transform`` is not callable.

    Example:
        >>> doubled = TransformedSource(np.arange(4), lambda x: x * 2)
        >>> doubled[1:3].tolist()
        [2, 4]
    """

    def __init__(self, source: Any, transform: Callable) -> None:
        if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(f"a source needs __len__ and __getitem__. Received: {source!r}")
        if not callable(transform):
            raise TypeError(f"expected a callable transform. Received: {transform!r}")
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: Any) -> Any:
        data = self.source[key]
        if not getattr(self.transform, "random", False):
            return self.transform(data)
        # A random transform is keyed by the sample ids read (NOTE [ Augmentation keys ]
        # in transforms/randomness.py): the same read, the same augmentation.
        from transforms import indices_generator

        return self.transform(data, rng=indices_generator(self._ids(key)))

    def _ids(self, key: Any) -> np.ndarray:
        length = len(self.source)
        if isinstance(key, slice):
            return np.arange(*key.indices(length), dtype=np.int64)
        if isinstance(key, int | np.integer):
            return np.array([check_index(key, length)], dtype=np.int64)
        return check_indices(key, length)

    def __repr__(self) -> str:
        return f"TransformedSource({self.source!r} | {self.transform!r})"
