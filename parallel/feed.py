"""`Feed`: the trainer's input, one `OrderedEnqueuer` per ``fit`` kept across epochs.

The feed turns each pipeline batch into ``(x, y, w, real)`` numpy arrays: ``w`` the
sample weights (class weights multiplied in, as Keras does), ``real`` 1 for a sample
and 0 for a padding row of a sharded pipeline (computed from the pure epoch plan, so a
user weight of 0 still counts as a sample, as in Keras). It cuts every batch into one
contiguous slice per local replica.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from .enqueuer import OrderedEnqueuer


def as_xyw(batch: Any) -> tuple[Any, Any, np.ndarray]:
    """Returns ``(x, y, w)`` of a batch, with unit weights filled in.

    Raises:
        ValueError: if the batch is not ``(x, y)`` or ``(x, y, sample_weight)``.
    """
    if isinstance(batch, dict) or not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise ValueError(
            f"MultiGPUTrainer needs (x, y) or (x, y, sample_weight) batches. "
            f"Received a {type(batch).__name__}"
        )
    x, y = batch[0], batch[1]
    w = batch[2] if len(batch) == 3 else np.ones(_rows(y), dtype=np.float32)
    return x, y, np.asarray(w, dtype=np.float32)


def _rows(y: Any) -> int:
    if isinstance(y, Mapping):
        return _rows(next(iter(y.values())))
    if isinstance(y, tuple | list):
        return _rows(y[0])
    return len(y)


def class_weights(y: Any, class_weight: Mapping[int, float]) -> np.ndarray:
    """Per-sample weights from ``class_weight``, exactly as Keras derives them.

    One-hot targets use their argmax, ``(n, 1)`` targets are squeezed, and labels are
    rounded to ints; classes missing from ``class_weight`` weigh 1.

    Example:
        >>> class_weights(np.array([0, 1, 1]), {1: 2.0}).tolist()
        [1.0, 2.0, 2.0]
    """
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype(np.int64)
    lookup = np.vectorize(lambda c: class_weight.get(int(c), 1.0), otypes=[np.float32])
    return lookup(labels) if labels.size else np.ones(0, np.float32)


class Feed:
    """Batches of a pipeline as per-replica slices, from one enqueuer started once.

    Args:
        seq: the `Pipeline` (already sharded for this worker, if it must be).
        local_replicas: replicas this process feeds; each batch is cut into as many
            contiguous slices (sizes differing by at most one, 0 rows allowed).
        workers: enqueuer workers.
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches computed ahead.
        repeat: keep going epoch after epoch (training) or stop after one (evaluation).
        initial_state: an enqueuer `state` to continue from (a restored backup).
        class_weight: ``{class: weight}`` multiplied into the sample weights.

    Example:
        >>> feed = Feed(Pipeline((np.zeros(5), np.zeros(5)), batch_size=4), 2, 0)
        >>> [len(w) for _, _, w, _ in feed.slices()]
        [2, 2, 0, 1]
        >>> feed.close()
    """

    def __init__(
        self,
        seq: Pipeline,
        local_replicas: int,
        workers: int,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        repeat: bool = False,
        initial_state: dict[str, Any] | None = None,
        class_weight: Mapping[int, float] | None = None,
    ) -> None:
        self.seq = seq
        self.local_replicas = local_replicas
        self.repeat = repeat
        self.class_weight = class_weight
        self.enqueuer = OrderedEnqueuer(
            seq, use_multiprocessing=use_multiprocessing, initial_state=initial_state
        )
        self.enqueuer.start(workers=workers, max_queue_size=max_queue_size)
        self._first: tuple[Any, ...] | None = None
        self._batches = self._prepared()

    def first(self) -> tuple[Any, Any, np.ndarray, np.ndarray]:
        """The first batch, read ahead (for the output signature and building metrics);
        it is still delivered by `slices`, so it is read from the pipeline only once."""
        if self._first is None:
            self._first = next(self._batches)
        return self._first

    def slices(self) -> Iterator[tuple[Any, Any, np.ndarray, np.ndarray]]:
        """Yields ``(x, y, w, real)`` per local replica, batch after batch."""
        batches = itertools.chain([self.first()], self._batches)
        self._first = None
        edges_cache: dict[int, np.ndarray] = {}
        for batch in batches:
            rows = len(batch[2])
            edges = edges_cache.get(rows)
            if edges is None:
                edges = np.linspace(0, rows, self.local_replicas + 1).round().astype(int)
                edges_cache[rows] = edges
            for a, b in itertools.pairwise(edges):
                yield _slice(batch, a, b)

    def close(self) -> None:
        """Stops the enqueuer and its workers."""
        self.enqueuer.stop()

    def _prepared(self) -> Iterator[tuple[Any, Any, np.ndarray, np.ndarray]]:
        while True:
            state = self.enqueuer.state()
            epoch, position = state["epoch"], state["next_index"]
            batches = self.enqueuer.iter_epoch()
            for batch in batches:
                yield self._prepare(batch, epoch, position)
                position += 1
            if not self.repeat:
                return

    def _prepare(self, batch: Any, epoch: int, position: int) -> tuple[Any, ...]:
        x, y, w = as_xyw(batch)
        x, y = _slice((x, y), 0, None)  # lists become tuples, as tf.data yields them
        real = np.ones(len(w), dtype=np.float32)
        if self.seq.sharded:
            plan_weights = self.seq.plan.batch(position, epoch).weights
            real = (plan_weights > 0).astype(np.float32)
            if len(real) != len(w):  # a wrapped batch-level Sequence: one weight per batch
                real = np.full(len(w), real[0], dtype=np.float32)
        if self.class_weight is not None:
            w = w * class_weights(y, self.class_weight)
        return x, y, w, real


def _slice(batch: tuple[Any, ...], a: int, b: int | None) -> tuple[Any, ...]:
    def cut(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return tuple(cut(v) for v in value)
        return value[a:b]

    return cut(batch)
