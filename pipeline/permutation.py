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

import hashlib
import operator
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

ROUNDS = 8
"""Feistel rounds: even, so the halves end where they started; at most 8 (one BLAKE2b)."""

MAX_SIZE = 2**62
"""The largest domain: ids and positions fit int64, and Feistel halves 31 bits."""

_MASK64 = 2**64 - 1
_ITER_CHUNK = 1 << 16
# Up to this many positions, Python ints beat numpy's per-call overhead on tiny arrays.
_SCALAR_LIMIT = 32


def _round_keys(entropy: tuple[int, ...]) -> tuple[int, ...]:
    # One 64-bit key per round from a keyed cryptographic hash of the entropy: cheap (a
    # microsecond, no numpy.random import), any integer size, and unrelated keys for
    # entropies that differ in any bit. repr() of a tuple of ints is unambiguous.
    digest = hashlib.blake2b(
        repr(entropy).encode(), digest_size=8 * ROUNDS, person=b"seqpipe-shuffle"
    ).digest()
    return struct.unpack(f"<{ROUNDS}Q", digest)


def _mix(x: Any) -> Any:
    # splitmix64's finaliser: a bijection of 64-bit words with full avalanche. The masks
    # are no-ops on uint64 arrays and keep Python ints to 64 bits.
    x = x ^ (x >> 30)
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x = x ^ (x >> 27)
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _feistel(x: Any, keys: tuple[int, ...], bits: int) -> Any:
    # One pass of E0 over [0, 2**bits); x is a Python int or a uint64 array.
    left_bits = bits - bits // 2
    right_bits = bits // 2
    for key in keys:
        left = x >> right_bits
        right = x & ((1 << right_bits) - 1)
        x = (right << left_bits) | ((left ^ _mix(right ^ key)) & ((1 << left_bits) - 1))
        left_bits, right_bits = right_bits, left_bits
    return x


class IndexPermutation:
    """A keyed pseudo-random permutation of ``[0, size)``, computed per position.

    Indexing works like a read-only int64 array of length ``size`` whose element ``i`` is
    the id at position ``i``: an int gives an int, a slice or an integer array gives an
    int64 array, and only the positions asked for are computed. ``np.asarray(p)``
    materialises the whole order (O(size) memory; meant for small sizes). Without a key
    the order is the identity. The construction is described in NOTE [ Feistel
    permutation with cycle-walking ] of this module.

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

    __slots__ = ("_bits", "_entropy", "_keys", "_size")

    def __init__(self, size: int, *entropy: int) -> None:
        if (
            isinstance(size, bool)
            or not isinstance(size, int | np.integer)
            or not 1 <= size <= MAX_SIZE
        ):
            raise ValueError(f"size must be an integer in [1, 2**62]. Received: size={size!r}")
        for value in entropy:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(
                    f"entropy must be non-negative integers. Received: entropy={entropy!r}"
                )
        self._size = int(size)
        self._entropy = tuple(int(v) for v in entropy)
        self._keys = _round_keys(self._entropy) if entropy else ()
        self._bits = (self._size - 1).bit_length()

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"IndexPermutation({', '.join(map(str, (self._size, *self._entropy)))})"

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
                f"IndexPermutation indices must be ints, slices or integer arrays. "
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
            raise ValueError("an IndexPermutation is computed, so np.asarray always copies")
        order = self[:]
        return order if dtype is None else order.astype(dtype)

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
