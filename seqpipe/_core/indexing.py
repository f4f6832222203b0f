"""Index normalisation shared by sources and ``source | transform``: ints, slices,
index arrays and boolean masks to non-negative int64 positions."""

from __future__ import annotations

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
