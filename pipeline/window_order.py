"""`WindowOrder`: the epoch order of ``shuffle="window"``, shard-local and exactly-once.

NOTE [ Window shuffle ]
Datasets stored as shards (tar shards, TFRecord files, Parquet row groups: *chunks*) are
cheap to read whole and dear to read at random, above all in a bucket. The window order
keeps reads chunk-local while every sample still appears exactly once per epoch:

1. the chunks are put in a random order (an `IndexPermutation` of the chunks, keyed by
   ``(seed, epoch, CHUNK_STREAM)``);
2. the permuted chunks are taken ``window`` at a time: window ``w`` holds permuted
   chunks ``[w * window, (w + 1) * window)``, and owns the positions of the epoch from
   the first sample of its first chunk to the last of its last;
3. inside each window the samples are permuted (an `IndexPermutation` of the window's
   samples keyed by ``(seed, epoch, WINDOW_STREAM, w)``).

Every step is a bijection, so the order is one of ``[0, num_samples)``, and a pure
function of ``(chunks, num_samples, window, seed, epoch)``: worker processes recompute
it. Building it costs O(number of chunks) (the chunk permutation and its cumulative
sizes are materialised); a lookup of ``k`` positions costs O(k) plus a binary search
per position. A reader that keeps the chunks of its window in memory reads each chunk
once per epoch. ``window`` trades that memory for shuffle quality: with ``window=1``
a batch holds samples of one or two chunks, with ``window >= len(chunks)`` the order is
a full shuffle. `tests/pipeline/test_window_order.py` measures the quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.checks import check_int
from .permutation import IndexPermutation, LazyOrder

# Third entropy word of the permutations; ``pipeline/plan.py`` uses 0 (samples) and 1
# (batches), so these keys are independent of its orders for the same seed and epoch.
CHUNK_STREAM = 2
WINDOW_STREAM = 3


def check_chunks(chunks: Any, num_samples: int) -> np.ndarray:
    """Returns ``chunks`` as int64 after checking it describes chunks of ``num_samples``.

    Args:
        chunks: the first sample id of each chunk, as a source's ``chunks`` gives it.
        num_samples: the number of samples of the source.

    Returns:
        A 1-D int64 array.

    Raises:
        ValueError: unless it starts at 0 and strictly increases below ``num_samples``.

    Example:
        >>> check_chunks([0, 4, 9], 10).tolist()
        [0, 4, 9]
    """
    array = np.asarray(chunks)
    if array.ndim != 1 or len(array) == 0 or array.dtype.kind not in "iu":
        raise ValueError(
            f"chunks must be a non-empty 1-D integer array of first sample ids. "
            f"Received: {chunks!r}"
        )
    array = array.astype(np.int64)
    if array[0] != 0 or np.any(np.diff(array) <= 0) or array[-1] >= num_samples:
        raise ValueError(
            f"chunks must start at 0 and strictly increase below num_samples={num_samples} "
            f"(one first sample id per non-empty chunk). Received: {array[:10].tolist()}"
            f"{'...' if len(array) > 10 else ''}"
        )
    return array


class WindowOrder(LazyOrder):
    """The sample ids of one epoch under ``shuffle="window"``, computed per position.

    Indexing works like a read-only int64 array of length ``num_samples`` whose element
    ``i`` is the id at position ``i`` of the epoch (a `LazyOrder`, as `IndexPermutation`).
    See NOTE [ Window shuffle ].

    Args:
        chunks: int64 first sample id of each chunk (a chunked source's ``chunks``).
        num_samples: number of samples.
        window: chunks per window, at least 1.
        seed: non-negative seed.
        epoch: non-negative epoch.

    Raises:
        ValueError: for malformed chunks or out-of-range arguments.

    Example:
        >>> order = WindowOrder([0, 3, 6, 9], 12, window=2, seed=0, epoch=0)
        >>> ids = order[:]
        >>> sorted(ids.tolist()) == list(range(12))
        True
        >>> [sorted(set((ids[w * 6 : w * 6 + 6] // 3).tolist())) for w in range(2)]
        [[1, 2], [0, 3]]
        >>> order.window_chunks(0).tolist(), order.window_range(1)
        ([2, 1], (6, 12))
    """

    __slots__ = ("_chunk_order", "_chunks", "_epoch", "_seed", "_starts", "_windows")

    def __init__(self, chunks: Any, num_samples: int, window: int, seed: int, epoch: int) -> None:
        super().__init__(num_samples)
        check_int("window", window, 1, hint="It counts chunks per window.")
        self._seed = check_int("seed", seed, 0)
        self._epoch = check_int("epoch", epoch, 0)
        self._chunks = check_chunks(chunks, self._size)
        count = len(self._chunks)
        sizes = np.diff(np.append(self._chunks, self._size))
        # _chunk_order[j]: the chunk at place j of the epoch; _starts[j]: its first
        # position (and _starts[-1] == num_samples).
        self._chunk_order = IndexPermutation(count, seed, epoch, CHUNK_STREAM)[:]
        self._starts = np.concatenate([[0], np.cumsum(sizes[self._chunk_order])])
        # _windows[w]: the first position of window w; _windows[-1] == num_samples.
        self._windows = np.append(self._starts[:count:window], self._size)
        self._windows.flags.writeable = False

    @property
    def num_windows(self) -> int:
        return len(self._windows) - 1

    def window_range(self, w: int) -> tuple[int, int]:
        """``(start, stop)``: the positions of the epoch that window ``w`` owns."""
        w = check_int("w", w, 0, self.num_windows - 1)
        return int(self._windows[w]), int(self._windows[w + 1])

    def window_chunks(self, w: int) -> np.ndarray:
        """The chunk numbers (indices into ``chunks``) window ``w`` reads, in epoch order."""
        start, stop = self.window_range(w)
        first, last = np.searchsorted(self._starts, [start, stop])
        return self._chunk_order[first:last].copy()

    def window_of(self, positions: Any) -> np.ndarray:
        """The window of each position (an int64 array shaped like ``positions``)."""
        return np.searchsorted(self._windows, np.asarray(positions), side="right") - 1

    def _apply_one(self, position: int) -> int:
        return int(self._apply(np.array([position], dtype=np.int64))[0])

    def _apply(self, positions: np.ndarray) -> np.ndarray:
        # positions: int64 in [0, num_samples), any shape.
        flat = positions.ravel()
        if flat.size == 0:
            return positions.copy()
        window = np.searchsorted(self._windows, flat, side="right") - 1
        shuffled = np.empty_like(flat)
        # Group the positions by window: a batch touches one or two windows, so this
        # loop runs once or twice; each window's permutation is keyed by its number.
        by_window = np.argsort(window, kind="stable")
        present, firsts = np.unique(window[by_window], return_index=True)
        for w, lo, hi in zip(present, firsts, [*firsts[1:], len(flat)], strict=True):
            members = by_window[lo:hi]
            start, stop = int(self._windows[w]), int(self._windows[w + 1])
            permutation = IndexPermutation(stop - start, self._seed, self._epoch, WINDOW_STREAM, w)
            shuffled[members] = start + permutation[flat[members] - start]
        place = np.searchsorted(self._starts, shuffled, side="right") - 1
        ids = self._chunks[self._chunk_order[place]] + (shuffled - self._starts[place])
        return ids.reshape(positions.shape)

    def __repr__(self) -> str:
        return (
            f"WindowOrder({len(self._chunks)} chunks, num_samples={self._size}, "
            f"windows={self.num_windows}, seed={self._seed}, epoch={self._epoch})"
        )
