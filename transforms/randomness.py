"""Random numbers for random transforms, keyed so that a sample's augmentation does not
depend on who computes it, in which batch, on which shard, or after which resume.

NOTE [ Augmentation keys ]
A random transform never keeps a generator from one batch to the next. Each call gets
a source of numbers built from a key, and the key alone decides every number drawn:

- Per sample (`SampleRandom`, what `RandomTransform.call` gets in a pipeline): sample
  ``s``'s numbers are a pure function of ``(seed, epoch, s, position)``, where the
  position counts the random transforms of the chain only (adding a deterministic stage,
  or caching the deterministic prefix to disk with `Pipeline.cache`, changes no
  augmentation). So a sample gets the same crop whatever the batch size, the shard
  count, the worker count or the resume point. Draws stay vectorised: row ``i`` of a
  draw of shape ``(n, ...)`` comes from sample ``ids[i]``'s own counter-based stream
  (splitmix64 of the sample's key plus a counter), with no generator built per sample.
- Per batch (`batch_random`, for `MixUp` and `CutMix`, which pair samples inside a
  batch and so cannot be per sample): a `numpy.random.Generator` keyed by ``(seed,
  epoch, position)`` and the batch's sample ids, in order. A batch of the same samples
  gets the same mix; another batch size makes other batches, hence other mixes.
- Behind ``source | transform`` (a `TransformedSource`, which knows no seed or epoch):
  per sample, with seed 0 and epoch 0, and the position counting the random transforms
  between the source and this one (``source | t1 | t2``: 0 and 1), so chained random
  transforms draw independent numbers.

Keys are 64-bit words hashed (BLAKE2b) from the integers above with a domain word that
keeps the kinds apart; epochs, seeds and positions draw independent streams.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .._core.checks import check_int
from .._core.mixing import GOLDEN_GAMMA, hashed_words, mix64

_SAMPLE_DOMAIN = 0x5E9_0003
_BATCH_DOMAIN = 0x5E9_0004
_SOURCE_DOMAIN = 0x5E9_0005
_PERSON = b"seqpipe-augment"
_TO_UNIT = 2.0**-53  # 53 random bits -> a float64 in [0, 1)
_COUNTER_BITS = 32  # a draw's elements are counted below its call number


def _key(domain: int, seed: int, epoch: int, position: int) -> int:
    words = (domain, *(check_int(k, v, 0) for k, v in (("seed", seed), ("epoch", epoch))))
    return hashed_words((*words, check_int("position", position, 0)), 1, _PERSON)[0]


class SampleRandom:
    """Random numbers for a batch of samples, each sample's from its own stream.

    Offers `numpy.random.Generator`'s drawing methods (`random`, `uniform`,
    `integers`, `normal`), with one rule: every draw has a ``size`` whose first axis is
    the batch's sample axis (``n`` rows, or ``(n, ...)``). Row ``i`` is drawn from
    sample ``ids[i]``'s stream, so its values do not depend on the other samples of the
    batch. Successive calls draw successive numbers of each stream.

    Args:
        key: the 64-bit key of ``(seed, epoch, position)`` (`sample_random` makes it).
        ids: the batch's sample ids, one per row (int64).

    Raises:
        TypeError: for a draw without a ``size`` whose first axis is ``len(ids)``.

    Example:
        >>> a = sample_random(0, 0, 0, [5, 9]).random(2)
        >>> b = sample_random(0, 0, 0, [9]).random(1)
        >>> bool(a[1] == b[0])  # sample 9 draws the same in either batch
        True
    """

    def __init__(self, key: int, ids: Any) -> None:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        # One splitmix64 stream per sample: its start is a hash of the key and the id.
        self._starts = mix64(mix64(ids.astype(np.uint64) + np.uint64(1)) ^ np.uint64(key))
        self._calls = 0

    def __len__(self) -> int:
        return len(self._starts)

    def _shape(self, size: Any) -> tuple[int, ...]:
        n = len(self._starts)
        shape = (size,) if isinstance(size, int | np.integer) else tuple(size or ())
        if not shape or shape[0] != n:
            raise TypeError(
                f"per-sample random draws need a size whose first axis is the batch's "
                f"{n} samples, e.g. rng.random({n}) or rng.random(({n}, 2)); a draw "
                f"shared by the whole batch is not per sample. Received: size={size!r}"
            )
        return tuple(int(d) for d in shape)

    def _bits(self, shape: tuple[int, ...], per_value: int = 1) -> np.ndarray:
        # uint64 words of shape (n, rest * per_value): splitmix64 at counters
        # (call << 32) + element, one stream per row.
        width = int(np.prod(shape[1:], dtype=np.int64)) * per_value
        counters = (np.arange(width, dtype=np.uint64) + np.uint64(1)) + np.uint64(
            self._calls << _COUNTER_BITS
        )
        self._calls += 1
        return mix64(self._starts[:, None] + counters[None, :] * np.uint64(GOLDEN_GAMMA))

    def random(self, size: Any = None) -> np.ndarray:
        """Floats uniform in ``[0, 1)``, of shape ``size``."""
        shape = self._shape(size)
        return ((self._bits(shape) >> np.uint64(11)) * _TO_UNIT).reshape(shape)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> np.ndarray:
        """Floats uniform in ``[low, high)``; ``low`` and ``high`` broadcast to ``size``."""
        return np.asarray(low) + (np.asarray(high) - np.asarray(low)) * self.random(size)

    def integers(self, low: Any, high: Any = None, size: Any = None) -> np.ndarray:
        """Integers in ``[low, high)`` (``[0, low)`` without ``high``), as int64; the
        bounds broadcast to ``size``. Exact for ranges below ``2**53``."""
        if high is None:
            low, high = 0, low
        span = np.asarray(high, dtype=np.int64) - np.asarray(low, dtype=np.int64)
        if np.any(span <= 0):
            raise ValueError(f"integers needs high > low. Received: low={low!r}, high={high!r}")
        return np.asarray(low, dtype=np.int64) + (self.random(size) * span).astype(np.int64)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> np.ndarray:
        """Gaussian floats (Box-Muller over two uniforms per value)."""
        shape = self._shape(size)
        words = self._bits(shape, per_value=2) >> np.uint64(11)
        u1 = 1.0 - words[:, 0::2] * _TO_UNIT  # in (0, 1]: the log is finite
        u2 = words[:, 1::2] * _TO_UNIT
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        return np.asarray(loc) + np.asarray(scale) * z.reshape(shape)


def sample_random(seed: int, epoch: int, position: int, ids: Any) -> SampleRandom:
    """The per-sample numbers of one random transform on one batch of a pipeline.

    A pure function of ``(seed, epoch, position)`` and, row by row, of the sample ids
    (NOTE [ Augmentation keys ]).

    Args:
        seed: the pipeline's seed.
        epoch: the epoch.
        position: the transform's rank among the random transforms of the chain.
        ids: the batch's sample ids, one per row.

    Raises:
        ValueError: if ``seed``, ``epoch`` or ``position`` is not an integer >= 0.

    Example:
        >>> first = sample_random(0, 1, 0, [3, 4]).random(2)
        >>> bool((first == sample_random(0, 1, 0, [3, 4]).random(2)).all())
        True
        >>> bool((first == sample_random(0, 2, 0, [3, 4]).random(2)).any())
        False
    """
    return SampleRandom(_key(_SAMPLE_DOMAIN, seed, epoch, position), ids)


def random_for(transform: Any, seed: int, epoch: int, position: int, ids: Any) -> Any:
    """What ``transform`` draws from on the batch of sample ids ``ids`` of a pipeline:
    `sample_random`, or `batch_random` for a transform whose ``per_sample`` is false.

    Example:
        >>> type(random_for(object(), 0, 0, 0, [1, 2])).__name__
        'SampleRandom'
    """
    keyed = sample_random if getattr(transform, "per_sample", True) else batch_random
    return keyed(seed, epoch, position, ids)


def source_random(transform: Any, position: int, ids: Any) -> Any:
    """What ``transform`` draws from behind ``source | transform`` (NOTE [ Augmentation
    keys ]): keyed by the sample ids and ``position``, apart from every pipeline key."""
    if getattr(transform, "per_sample", True):
        return SampleRandom(_key(_SOURCE_DOMAIN, 0, 0, position), ids)
    return _philox_of((_key(_SOURCE_DOMAIN, 0, 0, position), *hashed_ids(ids)))


def batch_random(seed: int, epoch: int, position: int, ids: Any) -> np.random.Generator:
    """The generator of a batch-level random transform (`MixUp`, `CutMix`) on one batch.

    Keyed by ``(seed, epoch, position)`` and the batch's sample ids, in order
    (NOTE [ Augmentation keys ]).

    Example:
        >>> a = batch_random(0, 0, 0, [3, 1]).random()
        >>> a == batch_random(0, 0, 0, np.array([3, 1])).random()
        True
        >>> a == batch_random(0, 0, 0, [1, 3]).random()
        False
    """
    return _philox_of((_key(_BATCH_DOMAIN, seed, epoch, position), *hashed_ids(ids)))


def _philox_of(words: tuple[int, ...]) -> np.random.Generator:
    entropy = np.asarray(words, dtype=np.uint64).view(np.uint32)
    key = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def hashed_ids(ids: Any) -> tuple[int, ...]:
    """Two 64-bit words hashed from sample ids (as int64), in order."""
    ids = np.ascontiguousarray(ids, dtype="<i8").ravel()
    digest = hashlib.blake2b(ids.tobytes(), digest_size=16, person=_PERSON).digest()
    return tuple(int(w) for w in np.frombuffer(digest, dtype="<u8"))


def as_generator(rng: Any, seed: Any, owner: Any) -> Any:
    """Returns what a random transform called directly draws from.

    Args:
        rng: a `numpy.random.Generator` or a `SampleRandom`, or ``None``.
        seed: an int seed for ``numpy.random.default_rng``, or ``None``.
        owner: the transform (named in errors).

    Returns:
        ``rng``, a generator seeded with ``seed``, or, when both are ``None``, a
        generator seeded from fresh OS entropy (not reproducible).

    Raises:
        TypeError: if ``rng`` is neither a `numpy.random.Generator` nor a `SampleRandom`.
        ValueError: if both are given, or ``seed`` is not an integer >= 0.

    Example:
        >>> as_generator(None, 3, "t").random() == np.random.default_rng(3).random()
        True
    """
    if rng is not None:
        if seed is not None:
            raise ValueError(f"{owner!r}: pass rng= or seed=, not both. Received: seed={seed!r}")
        if not isinstance(rng, np.random.Generator | SampleRandom):
            raise TypeError(
                f"{owner!r}: rng must be a numpy.random.Generator (e.g. "
                f"np.random.default_rng(0)). Received: rng={rng!r} of type "
                f"{type(rng).__name__}"
            )
        return rng
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(check_int("seed", seed, 0))
