"""The epoch plan: which samples form batch ``i`` of epoch ``e`` on shard ``k``.

Everything here is a pure function of ``(num_samples, batch_size, shuffle, seed,
drop_remainder, num_shards, shard_index, epoch)``. Worker processes recompute the plan
themselves instead of receiving index lists, and an enqueuer's checkpoint is a handful
of integers.

NOTE [ Sharding and padding ]
A sharded epoch is cut into ``num_shards`` contiguous, disjoint ranges of the epoch's
sample order whose sizes differ by at most one. Every shard is then padded to the
size of the largest one, so all shards have the same number of batches *and* the same
batch sizes (collective ops across workers need equal step counts and equal shapes).
A padding row repeats a real sample of the shard but carries weight 0, so no sample
contributes to a loss twice. With ``drop_remainder=True`` the epoch keeps only a
multiple of ``batch_size * num_shards`` samples: every batch is full, nothing is padded,
and the dropped samples are the last ``num_dropped`` of the epoch order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

ShuffleMode = bool | str


@dataclass(frozen=True)
class BatchPlan:
    """The sample ids of one batch and, for sharded plans, their weights.

    Attributes:
        indices: int64 sample ids, in the order the batch holds them.
        weights: float32 weights (1 for real samples, 0 for padding), or ``None`` for
            an unsharded plan.
    """

    indices: np.ndarray
    weights: np.ndarray | None = None

    def as_slice(self) -> slice | None:
        """Returns ``slice(a, b)`` when the ids are ``a, a+1, ..., b-1``, else ``None``."""
        ids = self.indices
        if len(ids) == 0:
            return None
        first = int(ids[0])
        last = int(ids[-1])
        if last - first + 1 != len(ids):
            return None
        if len(ids) > 1 and not np.all(np.diff(ids) == 1):
            return None
        return slice(first, last + 1)


@functools.lru_cache(maxsize=4)
def _sample_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    # Cached because every batch of an epoch needs the same O(n) permutation; the
    # cache holds results of a pure function, so it cannot change any answer.
    order = np.random.default_rng([seed, epoch, 0]).permutation(num_samples)
    order.flags.writeable = False
    return order


@functools.lru_cache(maxsize=4)
def _batch_permutation(num_batches: int, seed: int, epoch: int) -> np.ndarray:
    order = np.random.default_rng([seed, epoch, 1]).permutation(num_batches)
    order.flags.writeable = False
    return order


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


@dataclass(frozen=True)
class EpochPlan:
    """Frozen, validated description of how an epoch is cut into batches.

    Args:
        num_samples: number of samples (or batches, for a batch-level ``Sequence``).
        batch_size: samples per batch on one shard.
        shuffle: ``False`` keeps sample order; ``True`` draws a new permutation of
            samples every epoch; ``'batch'`` keeps samples contiguous and permutes the
            order of the batches.
        seed: non-negative integer; the permutations are pure functions of
            ``(seed, epoch)``.
        drop_remainder: drop the samples that do not fill a whole batch on every shard.
        num_shards: number of disjoint shards the epoch is split into.
        shard_index: which shard this plan describes.

    Raises:
        ValueError: for any out-of-range field, or a ``drop_remainder`` plan without a
            single full batch.

    Example:
        >>> plan = EpochPlan(10, 4)
        >>> plan.num_batches, plan.batch(2, epoch=0).indices.tolist()
        (3, [8, 9])
    """

    num_samples: int
    batch_size: int
    shuffle: ShuffleMode = False
    seed: int = 0
    drop_remainder: bool = False
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self) -> None:
        _check_int("num_samples", self.num_samples, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        _check_int("num_shards", self.num_shards, 1)
        _check_int("shard_index", self.shard_index, 0)
        if self.shuffle not in (False, True, "batch") or isinstance(self.shuffle, np.bool_):
            raise ValueError(
                f"shuffle must be False, True or 'batch'. Received: shuffle={self.shuffle!r}"
            )
        if self.shard_index >= self.num_shards:
            raise ValueError(
                f"shard_index must be in [0, num_shards={self.num_shards}). "
                f"Received: shard_index={self.shard_index}"
            )
        if self.drop_remainder and self.samples_per_shard == 0:
            raise ValueError(
                f"drop_remainder=True leaves no full batch: {self.num_samples} samples, "
                f"batch_size={self.batch_size}, num_shards={self.num_shards}"
            )

    @property
    def num_kept(self) -> int:
        """Samples of the epoch that are delivered (all of them unless dropped)."""
        if not self.drop_remainder:
            return self.num_samples
        per_step = self.batch_size * self.num_shards
        return (self.num_samples // per_step) * per_step

    @property
    def num_dropped(self) -> int:
        """Samples left out of every epoch by ``drop_remainder`` (the epoch order's tail)."""
        return self.num_samples - self.num_kept

    @property
    def samples_per_shard(self) -> int:
        """Rows of every shard, padding included; the same for all shards."""
        return math.ceil(self.num_kept / self.num_shards)

    @property
    def num_batches(self) -> int:
        """Batches per epoch on this shard (the same for every shard)."""
        return math.ceil(self.samples_per_shard / self.batch_size)

    def shard_range(self) -> tuple[int, int]:
        """Returns ``(start, end)``: the positions of the epoch order this shard owns."""
        base, extra = divmod(self.num_kept, self.num_shards)
        start = self.shard_index * base + min(self.shard_index, extra)
        return start, start + base + (1 if self.shard_index < extra else 0)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Returns all sample ids of ``epoch`` (every shard, dropped tail included)."""
        _check_int("epoch", epoch, 0)
        if self.shuffle is True:
            return _sample_permutation(self.num_samples, self.seed, epoch)
        return np.arange(self.num_samples, dtype=np.int64)

    def batch(self, index: int, epoch: int) -> BatchPlan:
        """Returns the plan of batch ``index`` of ``epoch`` on this shard.

        Args:
            index: batch position in ``[0, num_batches)``.
            epoch: non-negative epoch number.

        Returns:
            A `BatchPlan` with the sample ids and, when sharded, their weights.

        Raises:
            IndexError: if ``index`` is out of range.
        """
        num_batches = self.num_batches
        if not 0 <= index < num_batches:
            raise IndexError(f"batch index {index} out of range [0, {num_batches})")
        if self.shuffle == "batch":
            index = int(_batch_permutation(num_batches, self.seed, epoch)[index])
        lo = index * self.batch_size
        hi = min(lo + self.batch_size, self.samples_per_shard)
        start, end = self.shard_range()
        real_hi = min(hi, end - start)
        ids = self._order_slice(epoch, start + lo, start + max(lo, real_hi))
        if self.num_shards == 1:
            return BatchPlan(ids)
        num_pad = (hi - lo) - len(ids)
        weights = np.ones(hi - lo, dtype=np.float32)
        if num_pad:
            # Any real id will do as padding; its weight of 0 keeps it out of the loss.
            at = end - 1 if end > start else 0
            filler = self._order_slice(epoch, at, at + 1)
            ids = np.concatenate([ids, np.repeat(filler, num_pad)])
            weights[hi - lo - num_pad :] = 0.0
        return BatchPlan(ids, weights)

    def _order_slice(self, epoch: int, lo: int, hi: int) -> np.ndarray:
        # Positions [lo, hi) of the epoch order, without materialising an unshuffled
        # order: that would cost O(num_samples) per batch.
        if self.shuffle is True:
            return np.asarray(self.epoch_order(epoch)[lo:hi], dtype=np.int64)
        return np.arange(lo, hi, dtype=np.int64)
