"""The epoch plan: which samples form batch ``i`` of epoch ``e`` on shard ``k``.

Everything here is a pure function of ``(num_samples, batch_size, shuffle, seed,
drop_remainder, num_shards, shard_index, epoch)``. Worker processes recompute the plan
themselves instead of receiving index lists, and an enqueuer's checkpoint is a handful
of integers. Shuffled orders are computed per position (see `IndexPermutation`), so no
array of ``num_samples`` ids ever exists.

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

import math
from dataclasses import dataclass

import numpy as np

from .._core.checks import check_int
from .permutation import MAX_SIZE, IndexPermutation

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


# Third entropy word of the sample and of the batch permutation: independent keys.
_SAMPLE_STREAM = 0
_BATCH_STREAM = 1


@dataclass(frozen=True)
class EpochPlan:
    """Frozen, validated description of how an epoch is cut into batches.

    Shuffling costs O(batch) time and memory whatever ``num_samples`` is: the epoch
    order is an `IndexPermutation`, a keyed Feistel network over the next power of two
    with cycle-walking back into ``[0, num_samples)`` (NOTE [ Feistel permutation with
    cycle-walking ] in ``pipeline/permutation.py``), evaluated only at the positions a
    batch needs. ``shuffle=True`` keys it with ``(seed, epoch, 0)`` over samples,
    ``shuffle='batch'`` with ``(seed, epoch, 1)`` over batches. Tests:
    ``tests/pipeline/test_permutation.py`` (bijection for random and edge sizes,
    uniformity, rank correlation, independence of epochs and seeds) and
    ``tests/pipeline/test_plan.py`` (exactly-once, disjoint covering shards, padding,
    ``drop_remainder``, determinism).

    Args:
        num_samples: number of samples (or batches, for a batch-level ``Sequence``),
            at most ``2**62``.
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
        >>> huge = EpochPlan(10**12, 256, shuffle=True, seed=0)
        >>> len(huge.batch(0, epoch=0).indices), len(huge.epoch_order(0))
        (256, 1000000000000)
    """

    num_samples: int
    batch_size: int
    shuffle: ShuffleMode = False
    seed: int = 0
    drop_remainder: bool = False
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self) -> None:
        check_int("num_samples", self.num_samples, 1, MAX_SIZE)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("num_shards", self.num_shards, 1)
        check_int("shard_index", self.shard_index, 0)
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

    def epoch_order(self, epoch: int) -> IndexPermutation:
        """Returns the sample ids of ``epoch`` in order (every shard, dropped tail included).

        The result is lazy: indexing it computes only the positions asked for, and
        ``np.asarray`` materialises the whole order.

        Raises:
            ValueError: if ``epoch`` is not a non-negative integer.
        """
        check_int("epoch", epoch, 0)
        if self.shuffle is True:
            return IndexPermutation(self.num_samples, self.seed, epoch, _SAMPLE_STREAM)
        return IndexPermutation(self.num_samples)

    def batch(self, index: int, epoch: int) -> BatchPlan:
        """Returns the plan of batch ``index`` of ``epoch`` on this shard.

        Args:
            index: batch position in ``[0, num_batches)``.
            epoch: non-negative epoch number.

        Returns:
            A `BatchPlan` with the sample ids and, when sharded, their weights.

        Raises:
            IndexError: if ``index`` is out of range.
            ValueError: if ``epoch`` is not a non-negative integer.
        """
        check_int("epoch", epoch, 0)
        num_batches = self.num_batches
        if not 0 <= index < num_batches:
            raise IndexError(f"batch index {index} out of range [0, {num_batches})")
        if self.shuffle == "batch":
            index = IndexPermutation(num_batches, self.seed, epoch, _BATCH_STREAM)[index]
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
        # Positions [lo, hi) of the epoch order: O(hi - lo), whatever num_samples is.
        return self.epoch_order(epoch)[lo:hi]
