"""`IndexPermutation`: a keyed pseudo-random permutation of ``[0, n)``, one position at a time.

NOTE [ Feistel permutation with cycle-walking ]
Shuffling ``n`` samples by materialising ``np.random.permutation(n)`` costs O(n) time and
memory in every process that reads the plan, at every epoch. Instead, position ``i`` of
the epoch order is ``E(i)`` for a small-domain block cipher ``E`` on ``[0, n)``, as in
Grain's index shuffle and ``tf.random.experimental.index_shuffle``:

* ``E0`` is an (unbalanced, alternating) Feistel network over ``k``-bit words, where
  ``2**k`` is the smallest power of two ``>= n``: the word is split into halves of
  ``ceil(k/2)`` and ``floor(k/2)`` bits, and each of `ROUNDS` rounds maps ``(L, R)`` to
  ``(R, L ^ F(R ^ key_i))``. Every round is invertible whatever ``F`` is, so ``E0`` is a
  bijection of ``[0, 2**k)``. ``F`` is a 64-bit multiply-xorshift finaliser (the
  splitmix64 mixer), and the round keys are the 64-bit words of a BLAKE2b digest of the
  caller's entropy (``(seed, epoch, stream)``).
* Cycle-walking brings ``E0`` back to ``[0, n)``: ``E(i)`` applies ``E0`` until the
  value lands below ``n``. Following ``E0``'s cycle from ``i < n`` reaches an in-range
  value again before it returns to ``i``, and distinct starts reach distinct values, so
  ``E`` is a bijection of ``[0, n)``. As ``2**k < 2n``, fewer than half the values need
  another step; the expected number of steps is below 2.

Arrays are evaluated lane-parallel in ``uint64``, whose multiplication wraps modulo
``2**64`` silently, as the mixer intends; the loop of cycle-walking only revisits the
lanes still out of range. A single position, or a few (up to 32), runs the same code on
Python ints masked to 64 bits: ~20x cheaper than numpy on a one-element array. Nothing
of size ``n`` is ever allocated, unless a caller asks for the whole order with
``np.asarray``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._core.mixing import hashed_words, mix64

ROUNDS = 8
"""Feistel rounds: even, so the halves end where they started; at most 8 (one BLAKE2b)."""

MAX_SIZE = 2**62
"""The largest domain: ids and positions fit int64, and Feistel halves 31 bits."""

_ITER_CHUNK = 1 << 16
# Up to this many positions, Python ints beat numpy's per-call overhead on tiny arrays.
_SCALAR_LIMIT = 32


def _feistel(x: Any, keys: tuple[int, ...], bits: int) -> Any:
    # One pass of E0 over [0, 2**bits); x is a Python int or a uint64 array.
    left_bits = bits - bits // 2
    right_bits = bits // 2
    for key in keys:
        left = x >> right_bits
        right = x & ((1 << right_bits) - 1)
        x = (right << left_bits) | ((left ^ mix64(right ^ key)) & ((1 << left_bits) - 1))
        left_bits, right_bits = right_bits, left_bits
    return x


class LazyOrder:
    """An epoch order computed per position: a read-only int64 array of ids, lazily.

    Element ``i`` is the sample id at position ``i``. An int gives an int, a slice or an
    integer array gives an int64 array, and only the positions asked for are computed.
    ``np.asarray(order)`` materialises the whole order (O(size) memory; meant for small
    sizes). Subclasses implement ``_apply`` (an int64 array of in-range positions) and
    ``_apply_one`` (one position, as a Python int).
    """

    __slots__ = ("_size",)

    def __init__(self, size: int) -> None:
        if (
            isinstance(size, bool)
            or not isinstance(size, int | np.integer)
            or not 1 <= size <= MAX_SIZE
        ):
            raise ValueError(f"size must be an integer in [1, 2**62]. Received: size={size!r}")
        self._size = int(size)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            return self._apply(np.arange(start, stop, step, dtype=np.int64))
        if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
            position = operator.index(key)
            if not -self._size <= position < self._size:
                raise IndexError(f"position {position} out of range [0, {self._size})")
            return self._apply_one(position % self._size)
        positions = np.asarray(key)
        if positions.dtype.kind not in "iu":
            raise TypeError(
                f"{type(self).__name__} indices must be ints, slices or integer arrays. "
                f"Received: {key!r}"
            )
        # Checked in the caller's dtype: a uint64 above 2**63 must not wrap to negative.
        bad = (positions < -self._size) | (positions >= self._size)
        if bad.any():
            raise IndexError(f"position {int(positions[bad][0])} out of range [0, {self._size})")
        positions = positions.astype(np.int64)
        return self._apply(np.where(positions < 0, positions + self._size, positions))

    def __iter__(self) -> Iterator[int]:
        for lo in range(0, self._size, _ITER_CHUNK):
            yield from self[lo : lo + _ITER_CHUNK].tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError(f"a {type(self).__name__} is computed, so np.asarray always copies")
        order = self[:]
        return order if dtype is None else order.astype(dtype)

    def _apply_one(self, position: int) -> int:
        raise NotImplementedError

    def _apply(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _check_entropy(entropy: tuple[Any, ...]) -> tuple[int, ...]:
    for value in entropy:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(
                f"entropy must be non-negative integers. Received: entropy={entropy!r}"
            )
    return tuple(int(v) for v in entropy)


class IndexPermutation(LazyOrder):
    """A keyed pseudo-random permutation of ``[0, size)``, computed per position.

    Indexing works like a read-only int64 array of length ``size`` (see `LazyOrder`).
    Without a key the order is the identity. The construction is described in NOTE [
    Feistel permutation with cycle-walking ] of this module.

    Args:
        size: length of the domain, in ``[1, 2**62]``.
        entropy: non-negative integers that key the permutation (e.g. ``(seed, epoch,
            stream)``); the order is a pure function of them. Empty: the identity.

    Raises:
        ValueError: if ``size`` or an entropy value is out of range.

    Example:
        >>> p = IndexPermutation(10, 3, 0)
        >>> p[:].tolist()
        [1, 2, 9, 5, 3, 0, 7, 4, 8, 6]
        >>> p[4], p[[4, 0]].tolist(), len(p)
        (3, [3, 1], 10)
        >>> IndexPermutation(10**12, 3, 0)[10**12 - 1]
        811101394109
        >>> IndexPermutation(5)[1:4].tolist()
        [1, 2, 3]
    """

    __slots__ = ("_bits", "_entropy", "_keys")

    def __init__(self, size: int, *entropy: int) -> None:
        super().__init__(size)
        self._entropy = _check_entropy(entropy)
        self._keys = hashed_words(self._entropy, ROUNDS, b"seqpipe-shuffle") if entropy else ()
        self._bits = (self._size - 1).bit_length()

    def __repr__(self) -> str:
        return f"IndexPermutation({', '.join(map(str, (self._size, *self._entropy)))})"

    def _apply_one(self, position: int) -> int:
        if not self._keys:
            return position
        value = _feistel(position, self._keys, self._bits)
        while value >= self._size:
            value = _feistel(value, self._keys, self._bits)
        return value

    def _apply(self, positions: np.ndarray) -> np.ndarray:
        # positions: int64 in [0, size), any shape.
        if not self._keys:
            return positions
        if positions.size <= _SCALAR_LIMIT:
            ids = [self._apply_one(p) for p in positions.ravel().tolist()]
            return np.array(ids, dtype=np.int64).reshape(positions.shape)
        values = _feistel(positions.astype(np.uint64).ravel(), self._keys, self._bits)
        walking = np.flatnonzero(values >= self._size)
        while walking.size:
            stepped = _feistel(values[walking], self._keys, self._bits)
            values[walking] = stepped
            walking = walking[stepped >= self._size]
        return values.astype(np.int64).reshape(positions.shape)


class BlockPermutation(LazyOrder):
    """Contiguous blocks of ``block`` ids in a keyed order: ``shuffle='batch'``'s epoch order.

    The ``size // block`` whole blocks are permuted by an `IndexPermutation` keyed with
    ``entropy``; a last, partial block stays at the end. Within a block, ids stay in
    order, so a batch that is one block reads one contiguous run.

    Args:
        size: length of the domain, in ``[1, 2**62]``.
        block: ids per block, ``>= 1``.
        entropy: what keys the block order (see `IndexPermutation`).

    Raises:
        ValueError: if ``size``, ``block`` or an entropy value is out of range.

    Example:
        >>> order = BlockPermutation(11, 3, 7, 0)
        >>> order[:].tolist()
        [3, 4, 5, 6, 7, 8, 0, 1, 2, 9, 10]
    """

    __slots__ = ("_block", "_blocks")

    def __init__(self, size: int, block: int, *entropy: int) -> None:
        super().__init__(size)
        if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
            raise ValueError(f"block must be an integer >= 1. Received: block={block!r}")
        self._block = int(block)
        whole = self._size // self._block
        self._blocks = IndexPermutation(whole, *entropy) if whole else None

    def __repr__(self) -> str:
        return f"BlockPermutation({self._size}, {self._block}, {self._blocks!r})"

    def _apply_one(self, position: int) -> int:
        block, offset = divmod(position, self._block)
        if self._blocks is None or block >= len(self._blocks):
            return position
        return self._blocks[block] * self._block + offset

    def _apply(self, positions: np.ndarray) -> np.ndarray:
        if self._blocks is None:
            return positions
        blocks, offsets = np.divmod(positions, self._block)
        whole = blocks < len(self._blocks)
        ids = positions.copy()
        ids[whole] = self._blocks[blocks[whole]] * self._block + offsets[whole]
        return ids
