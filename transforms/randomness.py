"""Counter-based generators for random transforms: one fresh generator per batch.

NOTE [ Augmentation keys ]
A random transform never keeps a generator from one batch to the next. Each call gets
a `numpy.random.Generator` built from a key, and the key alone decides every number it
draws:

- in a `pipeline.Pipeline`, the key is ``(pipeline seed, epoch, number of shards, shard
  index, batch index, position)`` (`batch_generator`), where the position counts the
  random transforms of the chain only: adding a deterministic stage, or caching the
  deterministic prefix to disk (`pipeline.Pipeline.cache`), changes no augmentation;
- behind ``source | transform`` (a `sources.TransformedSource`, which knows no epoch),
  the key is a BLAKE2b hash of the int64 sample indices read (`indices_generator`): the
  same read gives the same augmentation, and shuffled epochs read different index sets.

The key's words are packed as fixed-width uint64 (so no two keys share an encoding),
prefixed by a domain word that keeps the two kinds of keys apart, and hashed by
`numpy.random.SeedSequence` into the 128-bit key of a Philox counter-based bit
generator. Because a batch's numbers depend on nothing but its key, batches are
identical whichever worker, thread or process computes them and in whatever order, a
resumed run reproduces the rest of its epoch, and epochs, seeds, shards and transform
positions draw independent streams.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

# First word of every key: separates pipeline keys from index-hash keys.
_BATCH_DOMAIN = 0x5E9_0001
_INDICES_DOMAIN = 0x5E9_0002


def _check_word(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
    return int(value)


def _philox(words: list[int]) -> np.random.Generator:
    entropy = np.asarray(words, dtype=np.uint64).view(np.uint32)
    key = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def batch_generator(
    seed: int, epoch: int, batch: int, position: int, shard: int = 0, num_shards: int = 1
) -> np.random.Generator:
    """Returns the generator of one transform on one batch of a pipeline.

    A pure function of its arguments (NOTE [ Augmentation keys ]).

    Args:
        seed: the pipeline's seed.
        epoch: the epoch.
        batch: the batch index within the epoch (on this shard).
        position: the transform's rank among the random transforms of the chain.
        shard: the shard index.
        num_shards: the number of shards.

    Returns:
        A `numpy.random.Generator` over a Philox bit generator.

    Raises:
        ValueError: if an argument is not an integer >= 0.

    Example:
        >>> a = batch_generator(seed=0, epoch=1, batch=2, position=0).random()
        >>> a == batch_generator(seed=0, epoch=1, batch=2, position=0).random()
        True
        >>> a == batch_generator(seed=0, epoch=2, batch=2, position=0).random()
        False
    """
    words = {
        "seed": seed,
        "epoch": epoch,
        "num_shards": num_shards,
        "shard": shard,
        "batch": batch,
        "position": position,
    }
    return _philox([_BATCH_DOMAIN, *(_check_word(k, v) for k, v in words.items())])


def indices_generator(indices: Any) -> np.random.Generator:
    """Returns the generator of a random transform behind ``source | transform``.

    Keyed by a BLAKE2b hash of the sample indices read, as int64 in read order
    (NOTE [ Augmentation keys ]).

    Args:
        indices: the non-negative sample ids that were read.

    Returns:
        A `numpy.random.Generator` over a Philox bit generator.

    Example:
        >>> a = indices_generator([3, 1]).random()
        >>> a == indices_generator(np.array([3, 1])).random()
        True
        >>> a == indices_generator([1, 3]).random()
        False
    """
    ids = np.ascontiguousarray(indices, dtype="<i8").ravel()
    digest = hashlib.blake2b(ids.tobytes(), digest_size=16).digest()
    return _philox([_INDICES_DOMAIN, *np.frombuffer(digest, dtype="<u8").tolist()])


def as_generator(rng: Any, seed: Any, owner: Any) -> np.random.Generator:
    """Returns the generator a random transform called directly draws from.

    Args:
        rng: a `numpy.random.Generator`, or ``None``.
        seed: an int seed for ``numpy.random.default_rng``, or ``None``.
        owner: the transform (named in errors).

    Returns:
        ``rng``, a generator seeded with ``seed``, or, when both are ``None``, a
        generator seeded from fresh OS entropy (not reproducible).

    Raises:
        TypeError: if ``rng`` is not a `numpy.random.Generator`.
        ValueError: if both are given, or ``seed`` is not an integer >= 0.

    Example:
        >>> as_generator(None, 3, "t").random() == np.random.default_rng(3).random()
        True
    """
    if rng is not None:
        if seed is not None:
            raise ValueError(f"{owner!r}: pass rng= or seed=, not both. Received: seed={seed!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"{owner!r}: rng must be a numpy.random.Generator (e.g. "
                f"np.random.default_rng(0)). Received: rng={rng!r} of type "
                f"{type(rng).__name__}"
            )
        return rng
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(_check_word("seed", seed))
