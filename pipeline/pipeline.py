"""`Pipeline`: sources, batching, shuffling, sharding and transforms as one Sequence.

How it makes a batch from its plan is in ``pipeline/batch_making.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._core.checks import check_int
from .._core.hooks import provide, provided
from ..transforms import Transform, as_transform
from .batch_making import StageClock, make_batch, read_key, transform_batch, weigh_batch
from .batches import BATCHES, DICT, TUPLE
from .config import Configurable
from .identity import pipeline_identity
from .plan import BatchPlan, EpochPlan, check_shuffle
from .sequence import Sequence
from .structure import arrange_sources, chunks_of


class Pipeline(Configurable, Sequence):
    """Batches, shuffles, shards and transforms array-like sources.

    Args:
        sources: one source, a tuple of sources (batches are tuples), a dict of sources
            (batches are dicts), or a batch-level `Sequence` (its batches are used as
            they are; ``shuffle`` then permutes batch order and ``batch_size`` and
            ``drop_remainder`` are ignored).
        batch_size: samples per batch.
        shuffle: ``False``, ``True`` (a new sample permutation every epoch),
            ``'batch'`` (contiguous batches in a new order every epoch: fast on HDF5) or
            ``'window'`` (the chunks of a chunked source in a new order, and the
            samples permuted within windows of ``window`` chunks: each chunk is read
            once per epoch; NOTE [ Window shuffle ] in ``pipeline/window_order.py``).
            Exactly these values: ``1`` or ``1.0`` raise.
        seed: seed of the permutations and of random transforms' numbers; ``None``
            draws one now (shuffles and augmentations differ from run to run), which
            this pipeline, its copies in worker processes and its `get_config` keep.
            Several processes that each build the pipeline (multi-worker training)
            must agree on one: pass ``seed=``, or let `MultiGPUTrainer` broadcast the
            chief's.
        window: chunks per window for ``shuffle='window'`` (default 8); the chunks are
            those of the first source that has ``chunks`` (`sources.TFRecordSource`,
            `sources.WebDatasetSource`, `sources.ParquetSource`'s row groups).
        drop_remainder: drop the last batch when it is not full. With fewer samples
            than one batch nothing would be left, so the constructor raises
            ``ValueError`` rather than give empty epochs; `shard` raises the same way
            when a shard would hold less than one batch. Without it, a short source is
            one short batch, and `shard` pads shards with weight-0 samples instead.

    Iterating a pipeline (``for batch in seq``) yields the current epoch's batches,
    then, after the last one, advances to the next epoch (`on_epoch_end`), as a PyTorch
    ``DataLoader`` reshuffles at every ``iter()``; `epoch` says which epoch is next. A
    loop stopped early stays in its epoch.

    Raises:
        ValueError: if sources have different lengths, are empty, an argument is out
            of range, or ``drop_remainder=True`` leaves no full batch.
        TypeError: if a source is not array-like.

    Example:
        >>> import numpy as np
        >>> p = Pipeline((np.arange(10), np.arange(10) % 2), batch_size=4)
        >>> len(p), p[2][0].tolist()
        (3, [8, 9])
        >>> Pipeline(np.arange(3), batch_size=4, drop_remainder=True)
        Traceback (most recent call last):
        ...
        ValueError: drop_remainder=True leaves no full batch: 3 samples, batch_size=4, num_shards=1
    """

    def __init__(
        self,
        sources: Any,
        batch_size: int = 32,
        shuffle: bool | str = False,
        seed: int | None = None,
        drop_remainder: bool = False,
        window: int | None = None,
    ) -> None:
        sources, structure, length = arrange_sources(sources)
        self.seed_was_drawn = seed is None
        if seed is None:
            seed = secrets.randbits(32)
        self._sources = sources
        self._structure = structure
        self._transforms: tuple[Transform, ...] = ()
        batch_level = structure == BATCHES
        shuffle = check_shuffle(shuffle)
        windowed = shuffle == "window"
        if window is not None and not windowed:
            raise ValueError(f"window= goes with shuffle='window'. Received: shuffle={shuffle!r}")
        self._plan = EpochPlan(
            num_samples=length,
            batch_size=1 if batch_level else batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=False if batch_level else drop_remainder,
            window=(8 if window is None else window) if windowed else 0,
            chunks=chunks_of(sources, structure) if windowed else (),
        )
        self._batch_size = None if batch_level else self._plan.batch_size
        self.epoch = 0
        # Where the steps of a resumed epoch begin: (epoch, global position, block size
        # of a 'batch' order), or None (NOTE [ Elastic resume ] in parallel/enqueuer.py).
        self._resumed: tuple[int, int, int | None] | None = None
        self._identity: dict[str, Any] | None = None

    # -- read-only description -------------------------------------------------------

    @property
    def plan(self) -> EpochPlan:
        """The `EpochPlan` (pure index arithmetic) this pipeline reads by."""
        return self._plan

    @property
    def sources(self) -> Any:
        return self._sources

    @property
    def structure(self) -> str:
        """``'single'``, ``'tuple'``, ``'dict'`` or ``'batches'`` (a wrapped Sequence)."""
        return self._structure

    @property
    def transforms(self) -> tuple[Transform, ...]:
        return self._transforms

    @property
    def batch_size(self) -> int | None:
        """Samples per batch, or ``None`` for a wrapped batch-level Sequence."""
        return self._batch_size

    @property
    def shuffle(self) -> bool | str:
        return self._plan.shuffle

    @property
    def seed(self) -> int:
        return self._plan.seed

    @property
    def drop_remainder(self) -> bool:
        return self._plan.drop_remainder

    @property
    def num_samples(self) -> int:
        """Samples (or, for a wrapped Sequence, batches) in the sources."""
        return self._plan.num_samples

    @property
    def pure_epochs(self) -> bool:
        """True when ``on_epoch_end`` only advances the epoch counter (no wrapped
        Sequence), so a worker's copy can follow with `set_epoch` alone."""
        return self._structure != BATCHES

    @property
    def sharded(self) -> bool:
        return self._plan.num_shards > 1

    # -- Sequence protocol -------------------------------------------------------------

    def __len__(self) -> int:
        """Batches of the current epoch: its remaining steps, when it was resumed."""
        return self._plan.num_steps(self._cursor(self.epoch)[0])

    def __iter__(self) -> Iterator[Any]:
        """Yields the current epoch's batches, then advances to the next epoch."""
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def __getitem__(self, index: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"batch index must be an int. Received: {index!r}")
        num = len(self)
        if not -num <= index < num:
            raise IndexError(f"batch index {index} out of range for {num} batches")
        return self.get_batch(int(index) % num, self.epoch)

    def get_batch(
        self, index: int, epoch: int, out: Any = None, clock: StageClock | None = None
    ) -> Any:
        """Returns batch ``index`` of ``epoch``, whatever the current epoch is.

        Args:
            index: batch position in ``[0, len(self))``.
            epoch: the epoch whose plan to use.
            out: arrays to read the sources into, structured like the batch before
                transforms (one array, a tuple or a dict); sources with ``read_into``
                (`sources.HDF5Matrix`) fill them in place. Transforms then run on them.
                ``None``: new arrays. The enqueuer passes views of shared memory.
            clock: called as ``clock(stage, output)`` as each stage ends, ``stage``
                numbering the stages as `print_summary` lists them: each source, the
                batch plan, each transform, the sharding weights (NOTE [ Stage clock ]
                in ``pipeline/batch_making.py``).

        Returns:
            The batch: an array, tuple or dict, with ``sample_weight`` added when the
            pipeline is sharded.
        """
        return make_batch(self, self.batch_plan(index, epoch), epoch, out, clock)

    @property
    def num_source_stages(self) -> int:
        """Sources read for each batch: the stages before the batch plan's."""
        if self._structure in (TUPLE, DICT):
            return len(self._sources)
        return 1

    def batch_plan(self, index: int, epoch: int) -> BatchPlan:
        """The sample ids (and weights, when sharded) of batch ``index`` of ``epoch``."""
        start, block = self._cursor(epoch)
        return self._plan.batch(index, epoch, start, block)

    def batch_rows(self, index: int, epoch: int) -> int:
        """Rows of batch ``index`` of ``epoch``, computed without its sample ids."""
        return self._plan.batch_rows(index, self._cursor(epoch)[0])

    def apply_transform(self, position: int, batch: Any, spec: BatchPlan, epoch: int) -> Any:
        """Runs transform ``position`` of the chain on the batch that ``spec`` describes.

        A random transform draws per sample (`transforms.sample_random`), keyed by
        ``(seed, epoch, sample id, k)`` where it is the ``k``-th random transform of the
        chain (NOTE [ Augmentation keys ] in ``transforms/randomness.py``), so a sample's
        augmentation depends neither on who computes it nor on the batch, shard or
        resume point it is read in, nor on deterministic stages added or cached away.
        """
        plan = self._plan
        return transform_batch(
            self._transforms, position, batch, spec, epoch, plan.seed, self._structure
        )

    def add_weights(self, batch: Any, spec: BatchPlan) -> Any:
        """``batch`` with the sample weights of a sharded plan attached (else as is)."""
        return weigh_batch(batch, spec, self._structure)

    read_key = staticmethod(read_key)

    def on_epoch_end(self) -> None:
        """Advances to the next epoch (and forwards to a wrapped Sequence)."""
        self.epoch += 1
        self._resumed = None
        if self._structure == BATCHES:
            self._sources.on_epoch_end()

    def set_epoch(self, epoch: int, start: int = 0, block: int | None = None) -> None:
        """Jumps to ``epoch``, whose steps begin at global position ``start``.

        Batches depend only on the epoch, the seed and where the epoch's steps begin:
        ``start > 0`` resumes an epoch of which the positions ``[0, start)`` of the order
        were delivered (NOTE [ Elastic resume ] in ``parallel/enqueuer.py``).

        Args:
            epoch: the epoch, ``>= 0``.
            start: the global position where its steps begin, in ``[0, num_samples]``.
            block: for ``shuffle='batch'``, the block size its order was begun with, when
                it is not this pipeline's ``batch_size``.

        Raises:
            ValueError: for an out-of-range argument.
        """
        check_int("epoch", epoch, 0)
        check_int("start", start, 0, self.num_samples)
        if block is not None:
            check_int("block", block, 1)
        self.epoch = int(epoch)
        self._resumed = (self.epoch, int(start), block) if start or block else None

    def _cursor(self, epoch: int) -> tuple[int, int | None]:
        resumed = self._resumed
        if resumed is not None and resumed[0] == epoch:
            return resumed[1], resumed[2]
        return 0, None

    def position(self, steps: int, epoch: int) -> int:
        """The global position of ``epoch`` once ``steps`` of its steps are delivered:
        the order's positions before it were consumed by all shards together."""
        return self._plan.position_after(steps, self._cursor(epoch)[0])

    def order_block(self, epoch: int) -> int | None:
        """The block size of ``epoch``'s order for ``shuffle='batch'``, else ``None``."""
        if self._plan.shuffle != "batch":
            return None
        return self._cursor(epoch)[1] or self._plan.batch_size

    def identity(self) -> dict[str, Any]:
        """What a saved position must match to mean the same samples: JSON-able
        (`pipeline.identity.pipeline_identity`; the topology is not part of it)."""
        if self._identity is None:
            self._identity = pipeline_identity(self)
        return dict(self._identity)

    def with_seed(self, seed: int) -> Pipeline:
        """This pipeline with another seed (e.g. one agreed on by several processes).

        Raises:
            ValueError: if ``seed`` is not an integer >= 0.
        """
        plan = dataclasses.replace(self._plan, seed=check_int("seed", seed, 0))
        return self._derive(_plan=plan, seed_was_drawn=False, _identity=None)

    # -- derived pipelines (pipelines are immutable) ----------------------------------

    def _derive(self, **changes: Any) -> Pipeline:
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def __or__(self, transform: Callable) -> Pipeline:
        chain = (*self._transforms, as_transform(transform))
        return self._derive(_transforms=chain, _identity=None)

    def shard(self, num_shards: int, index: int) -> Pipeline:
        """Returns shard ``index`` of ``num_shards`` disjoint, covering shards.

        The shards read each epoch's one global order together, a step at a time: step
        ``g`` takes the next ``batch_size * num_shards`` positions of the order, and this
        shard takes its ``batch_size`` of them, the ``index``-th slice. So whatever
        the shards have delivered together after any number of steps is a prefix of the
        order, which resumes on any topology. All shards have the same number of
        batches and the same batch sizes: the last step's rows are shared evenly and
        padded with weight-0 rows (NOTE [ Sharding and padding ] in
        ``pipeline/plan.py``), and batches carry ``sample_weight``.

        Args:
            num_shards: number of shards (workers).
            index: this shard, in ``[0, num_shards)``.

        Returns:
            A new Pipeline; this one is unchanged.

        Raises:
            ValueError: for out-of-range arguments, an already sharded pipeline, or
                ``drop_remainder=True`` with less than one batch per shard.

        Example:
            >>> import numpy as np
            >>> shard = Pipeline(np.arange(5), batch_size=2).shard(2, 1)
            >>> shard[0]
            (array([2, 3]), array([1., 1.], dtype=float32))
            >>> shard[1]  # the last step: one row left for two shards, so a padding row
            (array([4]), array([0.], dtype=float32))
        """
        if self.sharded:
            raise ValueError(f"{self!r} is already sharded; shard the unsharded pipeline")
        plan = dataclasses.replace(self._plan, num_shards=num_shards, shard_index=index)
        return self._derive(_plan=plan)

    def cache(
        self,
        path: str | os.PathLike,
        n_jobs: int = -1,
        rows_per_task: int | None = None,
        verbose: bool | None = None,
    ) -> Pipeline:
        """Decodes once: writes the deterministic part to HDF5, returns a pipeline over it.

        The sources and the transforms before the first random one are computed in
        parallel (joblib) into ``path``, resumably; the returned pipeline reads them with
        `HDF5Matrix` and runs the rest, giving the same batches. A complete cache with
        the same fingerprint is reused. See `pipeline.write_hdf5` for the details.

        Args:
            path: the HDF5 cache file.
            n_jobs: joblib workers (``-1``: one per core).
            rows_per_task: samples per parallel task; ``None`` picks about 8 MB.
            verbose: progress bar; ``None`` shows it on a terminal only.

        Returns:
            A new Pipeline; this one is unchanged.

        Raises:
            ValueError: if ``path`` holds a cache of another pipeline (naming both
                fingerprints) or a foreign file, or the pipeline cannot be fingerprinted.

        Example:
            >>> seq = Pipeline(images, batch_size=64, shuffle=True)  # doctest: +SKIP
            >>> fast = seq.cache("images.h5", n_jobs=2)              # doctest: +SKIP
        """
        # The body is `pipeline.write_hdf5` (``pipeline/cache.py``, above this module).
        return provided("Pipeline.cache")(self, path, n_jobs, rows_per_task, verbose)

    def __repr__(self) -> str:
        plan = self._plan
        parts = [
            f"{self._structure}[{plan.num_samples}]",
            f"batch_size={self._batch_size}",
            f"shuffle={plan.shuffle!r}",
            f"seed={plan.seed}",
        ]
        if plan.drop_remainder:
            parts.append("drop_remainder=True")
        if self.sharded:
            parts.append(f"shard={plan.shard_index}/{plan.num_shards}")
        chain = "".join(f" | {t!r}" for t in self._transforms)
        return f"Pipeline({', '.join(parts)}){chain}"


def _wrap_sequence(sequence: Sequence, transform: Callable) -> Pipeline:
    return Pipeline(sequence) | transform


provide("Sequence.__or__", _wrap_sequence)
