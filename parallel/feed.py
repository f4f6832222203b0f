"""Feeds: batches from one `OrderedEnqueuer` kept across epochs (`EnqueuerFeed`, read by
the framework adapters), and the trainer's input (`Feed`) built on it.

The trainer's feed turns each pipeline batch into ``(x, y, w, real)`` numpy arrays: ``w`` the
sample weights (class weights multiplied in, as Keras does), ``real`` 1 for a sample
and 0 for a padding row of a sharded pipeline (computed from the pure epoch plan, so a
user weight of 0 still counts as a sample, as in Keras). It cuts every batch into one
contiguous slice per local replica.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from ..pipeline.batches import leading_dim
from .autotune import Workers
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
    w = batch[2] if len(batch) == 3 else np.ones(leading_dim(y), dtype=np.float32)
    return x, y, np.asarray(w, dtype=np.float32)


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


class EnqueuerFeed:
    """Batches of ``seq`` in epoch order from one `OrderedEnqueuer` kept across epochs.

    The enqueuer starts at the first `next_batch` and stays until `stop` (or until the
    feed is garbage collected), so its workers start once, not once per epoch. The
    framework adapters read it batch by batch; the trainer's `Feed` cuts its batches
    into per-replica slices.

    Args:
        seq: the `Sequence` or `Pipeline`.
        workers: enqueuer workers (0: computed in the consumer's thread; ``"auto"``:
            tuned, see `OrderedEnqueuer.start`).
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches computed ahead.
        initial_state: an enqueuer `state` to continue from (the first enqueuer only).
        monitor: measure the input (`OrderedEnqueuer`'s ``monitor``); `enable_monitor`
            turns it on later.

    Example:
        >>> from seqpipe.pipeline import Pipeline
        >>> feed = EnqueuerFeed(Pipeline(np.arange(5), batch_size=2), 0, False, 10)
        >>> [feed.next_batch().tolist() for _ in range(3)]
        [[0, 1], [2, 3], [4]]
        >>> feed.finish_epoch()
        >>> feed.stop()
    """

    def __init__(
        self,
        seq: Any,
        workers: Workers,
        use_multiprocessing: bool,
        max_queue_size: int,
        initial_state: dict[str, Any] | None = None,
        monitor: bool = False,
    ) -> None:
        self.sequence = seq
        self._options = (workers, use_multiprocessing, max_queue_size)
        self.monitor = monitor
        self._batches: Iterator[Any] | None = None
        self._finalizer: weakref.finalize | None = None
        # Restored now, not at the first batch: the state positions the sequence (a
        # resumed epoch has fewer steps), which consumers read through len() first.
        self.enqueuer: Any = (
            None
            if initial_state is None
            else OrderedEnqueuer(
                seq, use_multiprocessing, initial_state=initial_state, monitor=monitor
            )
        )
        # Invariant: batches [0, position) of epoch `epoch` were delivered (by the
        # enqueuer, or before the state this feed resumes from).
        if self.enqueuer is None:
            self.epoch, self.position = int(getattr(seq, "epoch", 0) or 0), 0
        else:
            self.epoch, self.position = self.enqueuer.epoch, self.enqueuer.next_index

    def next_batch(self) -> Any:
        """The next batch of the current epoch (starting the enqueuer if needed)."""
        workers, use_multiprocessing, max_queue_size = self._options
        if self.enqueuer is None:
            self.enqueuer = OrderedEnqueuer(
                self.sequence, use_multiprocessing, monitor=self.monitor
            )
        if not self.enqueuer.is_running():
            self.enqueuer.start(workers=workers, max_queue_size=max_queue_size)
            # Not a method of self: the finalizer must not keep the feed alive.
            self._finalizer = weakref.finalize(self, self.enqueuer.stop)
        if self._batches is None:
            self._batches = self.enqueuer.iter_epoch()
        batch = next(self._batches)
        self.position += 1
        return batch

    def finish_epoch(self) -> None:
        """Ends the current epoch: the sequence's ``on_epoch_end`` runs once.

        After a whole epoch the enqueuer runs it and goes on with the same workers;
        after part of one (or none) it runs here and the enqueuer is stopped, to start
        again at the next epoch's first batch.
        """
        if self._batches is not None and self.position == len(self.sequence):
            for extra in self._batches:  # runs on_epoch_end inside the enqueuer
                raise RuntimeError(f"the enqueuer delivered a batch past the epoch: {extra!r}")
        else:
            self.stop()
            if hasattr(self.sequence, "on_epoch_end"):
                self.sequence.on_epoch_end()
        self._batches = None
        self.epoch += 1
        self.position = 0

    def state(self) -> dict[str, Any]:
        """The enqueuer's `state` after the batches delivered so far (JSON-able).

        Pass it as ``initial_state`` to continue from here, in this process or another.
        """
        if self.enqueuer is not None:
            return self.enqueuer.state()
        _, use_multiprocessing, _ = self._options
        # Not started, or stopped: the sequence's epoch (and where its steps begin, for
        # a resumed one) says where.
        return OrderedEnqueuer(self.sequence, use_multiprocessing).state()

    def enable_monitor(self) -> None:
        """Measures the input from the next batch on; an enqueuer running unmeasured
        restarts (only between epochs: at position 0)."""
        if self.monitor:
            return
        self.monitor = True
        enqueuer = self.enqueuer
        if enqueuer is None:
            return
        if not enqueuer.is_running():
            enqueuer.measure = True
        elif enqueuer.monitor is None and self.position == 0:
            self.stop()

    def rewind(self) -> None:
        """Goes back to the first batch of the current epoch (after an early stop)."""
        if self.position:
            self.stop()

    def stop(self) -> None:
        """Stops the enqueuer's workers; the next `next_batch` starts new ones."""
        if self._finalizer is not None:
            self._finalizer()  # stops the enqueuer once, and detaches the finalizer
        self.enqueuer = self._finalizer = self._batches = None
        self.position = 0


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
        class_weight: ``{class: weight}`` multiplied into the sample weights.
        monitor: measure the input (``batches.enqueuer.monitor``).

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
        workers: Workers,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        repeat: bool = False,
        class_weight: Mapping[int, float] | None = None,
        monitor: bool = False,
    ) -> None:
        self.seq = seq
        self.local_replicas = local_replicas
        self.repeat = repeat
        self.class_weight = class_weight
        self.batches = EnqueuerFeed(
            seq, workers, use_multiprocessing, max_queue_size, monitor=monitor
        )
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
        self.batches.stop()

    def _prepared(self) -> Iterator[tuple[Any, Any, np.ndarray, np.ndarray]]:
        feed = self.batches
        while True:
            epoch = feed.epoch
            for position in range(feed.position, len(self.seq)):
                yield self._prepare(feed.next_batch(), epoch, position)
            feed.finish_epoch()
            if not self.repeat:
                return

    def _prepare(self, batch: Any, epoch: int, position: int) -> tuple[Any, ...]:
        x, y, w = as_xyw(batch)
        x, y = _slice((x, y), 0, None)  # lists become tuples, as tf.data yields them
        real = np.ones(len(w), dtype=np.float32)
        if self.seq.sharded:
            plan_weights = self.seq.batch_plan(position, epoch).weights
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
