"""The epoch plan: which samples form batch ``i`` of epoch ``e`` on shard ``k``.

Everything here is a pure function of ``(num_samples, batch_size, shuffle, seed,
drop_remainder, num_shards, shard_index, epoch)`` and of where the epoch's steps start.
Worker processes recompute the plan themselves instead of receiving index lists, and an
enqueuer's checkpoint is a handful of integers. Shuffled orders are computed per
position (see `IndexPermutation`), so no array of ``num_samples`` ids ever exists.

NOTE [ Sharding and padding ]
Every epoch has one global order of its samples (`EpochPlan.epoch_order`), the same
whatever the topology. The shards consume it together, as a prefix, in *steps*: step
``g`` takes the next ``batch_size * num_shards`` positions, and shard ``k`` takes its
slice ``[k * batch_size, (k + 1) * batch_size)`` of them. So after any number of steps,
what all shards together have consumed is a prefix ``[0, P)`` of the order, which is why
a checkpoint is just ``(epoch, P)`` and resumes on any number of shards, any batch size
(NOTE [ Elastic resume ] in ``parallel/enqueuer.py``). Only the last step may be short:
its ``r`` remaining positions are cut into ``num_shards`` slices of ``ceil(r /
num_shards)`` rows, the last ones padded to that size with rows that repeat a real
sample but carry weight 0. So all shards have the same number of steps and the same
batch shapes (collective ops across workers need both), and no sample contributes to a
loss twice. With ``drop_remainder=True`` the epoch keeps only whole steps: every batch
is full, nothing is padded, and the dropped samples are the order's tail. The price of
the prefix is locality: a shard's samples are interleaved slices of every step, not a
contiguous part of the order, so with sharded, unshuffled or ``'batch'``-shuffled
chunked storage every host reads from every chunk (each chunk once per epoch, where the
source keeps what it decoded).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core.checks import check_int
from .permutation import MAX_SIZE, BlockPermutation, IndexPermutation, LazyOrder
from .window_order import WindowOrder, check_chunks

ShuffleMode = bool | str
SHUFFLE_MODES = (False, True, "batch", "window")


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


# Third entropy word of the sample and of the block permutation: independent keys.
_SAMPLE_STREAM = 0
_BLOCK_STREAM = 1


def check_shuffle(shuffle: object) -> ShuffleMode:
    """Returns ``shuffle`` as ``False``, ``True``, ``'batch'`` or ``'window'``.

    Raises:
        ValueError: for anything else; ``1`` and ``1.0`` too, which equal ``True`` but
            would be read as "no shuffle" by code that tests ``shuffle is True``.

    Example:
        >>> check_shuffle(np.True_), check_shuffle("batch")
        (True, 'batch')
        >>> check_shuffle(1)
        Traceback (most recent call last):
        ...
        ValueError: shuffle must be False, True, 'batch' or 'window'. Received: shuffle=1
    """
    if isinstance(shuffle, bool | np.bool_):
        return bool(shuffle)
    if isinstance(shuffle, str) and shuffle in SHUFFLE_MODES:
        return shuffle
    raise ValueError(
        f"shuffle must be False, True, 'batch' or 'window'. Received: shuffle={shuffle!r}"
    )


@functools.lru_cache(maxsize=8)
def _window_order(chunks: tuple[int, ...], size: int, window: int, seed: int, epoch: int) -> Any:
    # Built once per epoch (O(chunks)), not once per batch: every batch of an epoch
    # asks for its order.
    return WindowOrder(np.array(chunks, dtype=np.int64), size, window, seed, epoch)


@dataclass(frozen=True)
class EpochPlan:
    """Frozen, validated description of how an epoch is cut into steps and batches.

    Shuffling costs O(batch) time and memory whatever ``num_samples`` is: the epoch
    order is an `IndexPermutation`, a keyed Feistel network over the next power of two
    with cycle-walking back into ``[0, num_samples)`` (NOTE [ Feistel permutation with
    cycle-walking ] in ``pipeline/permutation.py``), evaluated only at the positions a
    batch needs. ``shuffle=True`` keys it with ``(seed, epoch, 0)`` over samples;
    ``shuffle='batch'`` permutes blocks of ``batch_size`` contiguous samples with
    ``(seed, epoch, 1)`` (`BlockPermutation`). Shards consume the order together, step
    by step (NOTE [ Sharding and padding ]). Tests: ``tests/pipeline/test_permutation.py``
    (bijection, uniformity, rank correlation, independence of epochs and seeds) and
    ``tests/pipeline/test_plan.py`` (exactly-once, prefixes, padding, ``drop_remainder``,
    resuming on another topology).

    Args:
        num_samples: number of samples (or batches, for a batch-level ``Sequence``),
            at most ``2**62``.
        batch_size: samples per batch on one shard.
        shuffle: ``False`` keeps sample order; ``True`` draws a new permutation of
            samples every epoch; ``'batch'`` keeps blocks of ``batch_size`` samples
            contiguous and permutes their order; ``'window'`` permutes the chunks, then
            the samples within windows of ``window`` chunks (`WindowOrder`).
        seed: non-negative integer; the orders are pure functions of ``(seed, epoch)``.
        drop_remainder: keep only whole steps (every shard's batch full).
        num_shards: number of shards the steps are split into.
        shard_index: which shard this plan describes.
        window: chunks per window, for ``shuffle='window'`` (else 0).
        chunks: the first sample id of each chunk, for ``shuffle='window'``.

    Raises:
        ValueError: for any out-of-range field, or a ``drop_remainder`` plan without a
            single whole step.

    Example:
        >>> plan = EpochPlan(10, 4)
        >>> plan.num_batches, plan.batch(2, epoch=0).indices.tolist()
        (3, [8, 9])
        >>> EpochPlan(10, 2, num_shards=2, shard_index=1).batch(0, epoch=0).indices.tolist()
        [2, 3]
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
    window: int = 0
    chunks: tuple[int, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        check_int("num_samples", self.num_samples, 1, MAX_SIZE)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("num_shards", self.num_shards, 1)
        check_int("shard_index", self.shard_index, 0)
        object.__setattr__(self, "shuffle", check_shuffle(self.shuffle))
        if self.shuffle == "window":
            check_int("window", self.window, 1, hint="It counts chunks per window.")
            chunks = check_chunks(self.chunks, self.num_samples)
            object.__setattr__(self, "chunks", tuple(chunks.tolist()))
        elif self.window or self.chunks:
            raise ValueError(
                f"window= and chunks= go with shuffle='window'. Received: "
                f"shuffle={self.shuffle!r}, window={self.window!r}"
            )
        if self.shard_index >= self.num_shards:
            raise ValueError(
                f"shard_index must be in [0, num_shards={self.num_shards}). "
                f"Received: shard_index={self.shard_index}"
            )
        if self.drop_remainder and self.num_batches == 0:
            raise ValueError(
                f"drop_remainder=True leaves no full batch: {self.num_samples} samples, "
                f"batch_size={self.batch_size}, num_shards={self.num_shards}"
            )

    @property
    def step_size(self) -> int:
        """Samples of the epoch order one step consumes: ``batch_size * num_shards``."""
        return self.batch_size * self.num_shards

    def end(self, start: int = 0) -> int:
        """Where an epoch whose steps begin at ``start`` stops: ``num_samples``, or with
        ``drop_remainder`` the end of the last whole step."""
        if not self.drop_remainder:
            return self.num_samples
        return start + (self.num_samples - start) // self.step_size * self.step_size

    @property
    def num_kept(self) -> int:
        """Samples of the epoch that are delivered (all of them unless dropped)."""
        return self.end()

    @property
    def num_dropped(self) -> int:
        """Samples left out of every epoch by ``drop_remainder`` (the epoch order's tail)."""
        return self.num_samples - self.num_kept

    @property
    def num_batches(self) -> int:
        """Batches per epoch on this shard (the same for every shard)."""
        return self.num_steps()

    def num_steps(self, start: int = 0) -> int:
        """Steps (batches per shard) from global position ``start`` to the epoch's end.

        Raises:
            ValueError: if ``start`` is not in ``[0, num_samples]``.
        """
        self._check_start(start)
        return math.ceil((self.end(start) - start) / self.step_size)

    def position_after(self, steps: int, start: int = 0) -> int:
        """The global position reached after ``steps`` steps from ``start``: every sample
        of the epoch order before it has been delivered, by all shards together.

        Example:
            >>> EpochPlan(10, 2, num_shards=2).position_after(2), EpochPlan(10, 4).position_after(3)
            (8, 10)
        """
        self._check_start(start)
        return min(start + steps * self.step_size, self.end(start))

    def batch_rows(self, index: int, start: int = 0) -> int:
        """Rows of every shard's batch at step ``index`` (padding included), computed
        without the sample ids: ``batch_size``, or a share of the last step's rows.

        Example:
            >>> EpochPlan(10, 2, num_shards=3).batch_rows(1)  # 4 rows left for 3 shards
            2
        """
        remaining = min(self.step_size, self.end(start) - start - index * self.step_size)
        if remaining == self.step_size:
            return self.batch_size
        return -(-remaining // self.num_shards)

    def epoch_order(self, epoch: int, block: int | None = None) -> LazyOrder:
        """Returns the sample ids of ``epoch`` in order (every shard, dropped tail included).

        The result is lazy: indexing it computes only the positions asked for, and
        ``np.asarray`` materialises the whole order.

        Args:
            epoch: non-negative epoch number.
            block: for ``shuffle='batch'``, the block size of the order (default
                ``batch_size``); a resumed epoch keeps the block size it began with.

        Raises:
            ValueError: if ``epoch`` is not a non-negative integer.
        """
        check_int("epoch", epoch, 0)
        if self.shuffle is True:
            return IndexPermutation(self.num_samples, self.seed, epoch, _SAMPLE_STREAM)
        if self.shuffle == "batch":
            size = self.batch_size if block is None else check_int("block", block, 1)
            return BlockPermutation(self.num_samples, size, self.seed, epoch, _BLOCK_STREAM)
        if self.shuffle == "window":
            return _window_order(self.chunks, self.num_samples, self.window, self.seed, epoch)
        return IndexPermutation(self.num_samples)

    def batch(self, index: int, epoch: int, start: int = 0, block: int | None = None) -> BatchPlan:
        """Returns the plan of this shard's batch at step ``index`` of ``epoch``.

        Args:
            index: step in ``[0, num_steps(start))``.
            epoch: non-negative epoch number.
            start: the global position where the epoch's steps begin (0, unless the
                epoch was resumed mid-way).
            block: the order's block size, for ``shuffle='batch'`` (see `epoch_order`).

        Returns:
            A `BatchPlan` with the sample ids and, when sharded, their weights.

        Raises:
            IndexError: if ``index`` is out of range.
            ValueError: if ``epoch`` or ``start`` is out of range.
        """
        check_int("epoch", epoch, 0)
        num_steps = self.num_steps(start)
        if not 0 <= index < num_steps:
            raise IndexError(f"batch index {index} out of range [0, {num_steps})")
        end = self.end(start)
        lo = start + index * self.step_size
        rows = self.batch_rows(index, start)
        first = min(lo + self.shard_index * rows, end)
        last = min(first + rows, end)
        order = self.epoch_order(epoch, block)
        ids = order[first:last]
        if self.num_shards == 1:
            return BatchPlan(ids)
        weights = np.ones(rows, dtype=np.float32)
        if last - first < rows:
            # Any real id will do as padding (the step's first): weight 0 keeps it out
            # of the loss.
            ids = np.concatenate([ids, np.full(rows - (last - first), order[lo], np.int64)])
            weights[last - first :] = 0.0
        return BatchPlan(ids, weights)

    def _check_start(self, start: int) -> None:
        check_int("start", start, 0, self.num_samples)
