"""64-bit mixing shared by the keyed permutations of the epoch plan and the per-sample
random draws of augmentations: splitmix64's finaliser and keys hashed from integers."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

MASK64 = 2**64 - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment: odd, so it walks all 2**64


def mix64(x: Any) -> Any:
    """splitmix64's finaliser: a bijection of 64-bit words with full avalanche.

    Works on Python ints (masked to 64 bits) and on ``uint64`` arrays, whose
    multiplication wraps modulo ``2**64`` silently, as the mixer intends.

    Example:
        >>> mix64(0), mix64(1) == mix64(1)
        (0, True)
    """
    x = x ^ (x >> 30)
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x = x ^ (x >> 27)
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def hashed_words(entropy: tuple[int, ...], count: int, person: bytes) -> tuple[int, ...]:
    """``count`` 64-bit words from a keyed BLAKE2b hash of non-negative integers.

    Cheap (a microsecond, no ``numpy.random`` import), any integer size, and unrelated
    words for entropies that differ in any bit; ``person`` separates the uses.

    Args:
        entropy: the integers; ``repr`` of a tuple of ints is unambiguous.
        count: words wanted, at most 8 (one BLAKE2b digest).
        person: up to 16 bytes naming the use.

    Example:
        >>> len(hashed_words((1, 2), 3, b"example"))
        3
    """
    digest = hashlib.blake2b(repr(entropy).encode(), digest_size=8 * count, person=person)
    return struct.unpack(f"<{count}Q", digest.digest())
