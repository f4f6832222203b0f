"""``seq.as_jax()``: a pipeline's batches as ``jax.Array``s, global arrays under a
``jax.sharding.Sharding`` (JAX is imported when an iterator is made, not when this
module is).

NOTE [ Global batches from process-local shards ]
With a ``sharding`` whose devices span several processes (``jax.distributed``), each
process reads shard ``jax.process_index()`` of ``jax.process_count()`` of the pipeline
(``Pipeline.shard``: equal batch counts, weight-0 padding rows, ``sample_weight`` in
every batch) and ``jax.make_array_from_process_local_data`` joins the processes' rows
into one global array, process 0's rows first. In one process the local batch is the
global batch, split across the local devices by the sharding. Either way the global
batch's leading axis must divide evenly among the devices along it: the last, short
batch of an epoch does not, so such a pipeline needs ``drop_remainder=True`` or a batch
size the device count divides (sharded pipelines pad every shard's batches to the same
size, but the last batch of the epoch may still be short). A batch that cannot be laid
out raises a ``ValueError`` saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._core.hooks import provide
from .._core.optional import require
from .loader import EpochLoader, shard_for


def _jax_world() -> tuple[int, int] | None:
    import jax

    return (jax.process_count(), jax.process_index()) if jax.process_count() > 1 else None


class JaxIterator(EpochLoader):
    """The batches of ``seq`` as ``jax.Array``s, one epoch per ``iter()``.

    Batches keep the pipeline's structure (tuple, dict). Without ``sharding`` each
    array is put on JAX's default device. With a ``jax.sharding.Sharding`` (for data
    parallelism, a ``NamedSharding`` whose mesh axis splits the batch axis), each array
    is a global array laid out by it: in several processes, every process reads its own
    shard of the pipeline and ``jax.make_array_from_process_local_data`` joins them
    (see NOTE [ Global batches from process-local shards ] in
    ``parallel/jax_iterator.py``). Epochs, ``len()``, ``state_dict()`` and
    ``load_state_dict()`` work as for `as_torch`.

    Args:
        seq: the `Sequence` or `Pipeline`.
        sharding: a ``jax.sharding.Sharding`` for every array, or ``None``.
        workers: enqueuer workers (0: batches are computed in the loop's thread).
        use_multiprocessing: worker processes instead of threads.
        prefetch: batches each worker computes ahead.
        shard: ``"auto"`` (shard ``jax.process_index()`` of ``jax.process_count()``
            when JAX runs several processes; nothing otherwise), ``None`` or
            ``(num_shards, index)``; sharded batches carry ``sample_weight``.

    Attributes:
        sharding: the ``jax.sharding.Sharding`` of every array, or ``None`` (the
            default device).

    Raises:
        ImportError: if JAX is not installed (``pip install 'seqpipe[jax]'``).
        ValueError: for a bad ``prefetch`` or ``shard``; while iterating, for a batch
            that ``sharding`` cannot lay out.

    Example:
        >>> mesh = jax.make_mesh((jax.device_count(),), ("batch",))  # doctest: +SKIP
        >>> sharding = jax.sharding.NamedSharding(mesh, P("batch"))   # doctest: +SKIP
        >>> for x, y in seq.as_jax(sharding, workers=2):             # doctest: +SKIP
        ...     state = train_step(state, x, y)
    """

    def __init__(
        self,
        seq: Any,
        sharding: Any = None,
        workers: int = 0,
        use_multiprocessing: bool = True,
        prefetch: int = 2,
        shard: Any = "auto",
    ) -> None:
        require("jax", "jax", "seq.as_jax()")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1. Received: prefetch={prefetch!r}")
        seq = shard_for(seq, shard, _jax_world)
        super().__init__(seq, workers, use_multiprocessing, prefetch * max(1, workers))
        self.sharding = sharding

    def convert(self, batch: Any) -> Any:
        import jax

        def leaf(value: Any) -> Any:
            if value is None or isinstance(value, str | bytes):
                return value
            array = np.asarray(value)
            if self.sharding is None:
                return jax.device_put(array)
            try:
                return jax.make_array_from_process_local_data(self.sharding, array)
            except ValueError as error:
                raise ValueError(
                    f"a batch element of shape {array.shape} cannot be laid out by "
                    f"{self.sharding}: {error}. Its leading axis must divide evenly "
                    f"among the devices; the last batch of an epoch is short unless "
                    f"Pipeline(..., drop_remainder=True) or the batch size is a multiple "
                    f"of the device count (NOTE [ Global batches from process-local "
                    f"shards ] in parallel/jax_iterator.py)"
                ) from error

        return _map_leaves(leaf, batch)


def _map_leaves(fn: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return type(value)({k: _map_leaves(fn, v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return type(value)(_map_leaves(fn, v) for v in value)
    return fn(value)


# `seq.as_jax(...)` and `parallel.as_jax(seq, ...)` build a `JaxIterator`.
as_jax = JaxIterator

provide("Sequence.as_jax", as_jax)
