"""Keras and tf.data adapters for any `Sequence` (TensorFlow is imported lazily here).

NOTE [ How model.fit reads an as_keras() dataset ]
Keras 3's ``PyDatasetAdapter`` starts its own enqueuer (a ``multiprocessing.Pool`` that
pickles every batch through a pipe, restarted every epoch) when a ``PyDataset`` reports
``workers > 1`` or ``workers > 0 and use_multiprocessing``. Otherwise it calls
``__getitem__`` in order from its own thread (tf.data's, with the TensorFlow backend).
So the dataset reports ``workers=0`` to Keras and answers those in-order calls from one
`OrderedEnqueuer`, started at the first batch and kept across epochs and fits, whose
workers compute ahead. Keras also calls ``__getitem__`` outside the order: for batches
0 and 1 before ``fit`` starts (to infer the tensor specs), and in a random order each
epoch with ``fit(shuffle=True)``, its default. Those calls are computed in the calling
thread, so every call returns exactly ``sequence[index]`` of the current epoch.
Keras calls ``on_epoch_end`` once before the first epoch too (``EpochIterator.reset``);
only an ``on_epoch_end`` that closes an ``on_epoch_begin`` ends an epoch.
"""

from __future__ import annotations

import functools
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

from .._core.hooks import provide
from .autotune import Workers
from .feed import EnqueuerFeed
from .tensor_specs import as_tuples, output_signature
from .tensorboard_metrics import EpochInputMetrics, fit_tensorboard_log_dir


def as_tf_dataset(
    seq: Any, workers: Workers = 0, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """A re-iterable ``tf.data.Dataset``: each iteration is one epoch of ``seq``.

    One `OrderedEnqueuer` feeds every iteration: its workers start at the first batch
    and are kept across epochs; ``on_epoch_end`` runs once after each whole epoch. An
    iteration stopped early is not an epoch: the next one starts again at its first
    batch. The dataset's cardinality is ``len(seq)``. The workers stop when the dataset
    is garbage collected (or at exit).

    Args:
        seq: the `Sequence` or `Pipeline`.
        workers: enqueuer workers (0: read in tf.data's own thread; ``"auto"`` or
            `AutoWorkers`: tuned, with ``use_multiprocessing=True``).
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches computed ahead.

    Returns:
        The dataset, with ``output_signature`` inferred from batch 0.

    Example:
        >>> import numpy as np
        >>> from seqpipe.pipeline import Pipeline
        >>> ds = Pipeline(np.arange(10), batch_size=4).as_tf_dataset(workers=2)
        >>> [len(b) for b in ds]  # doctest: +SKIP
        [4, 4, 2]
    """
    import tensorflow as tf

    signature = output_signature(seq[0])
    feed = EnqueuerFeed(seq, workers, use_multiprocessing, max_queue_size)
    feed_ref = weakref.ref(feed)
    lock = threading.Lock()

    def one_epoch() -> Iterator[Any]:
        feed = feed_ref()
        if feed is None:
            raise RuntimeError("the dataset of as_tf_dataset() was garbage collected")
        with lock:
            feed.rewind()  # a pass stopped early is not an epoch
            num_batches = len(seq)
        for _ in range(num_batches):
            with lock:
                batch = feed.next_batch()
                if feed.position == num_batches:
                    # Now, not when asked past the end: a consumer that knows the
                    # cardinality (Keras) never asks.
                    feed.finish_epoch()
            yield as_tuples(batch)

    dataset = tf.data.Dataset.from_generator(one_epoch, output_signature=signature)
    # A known length gives Keras its step count (a progress bar, no "ran out of data").
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(seq)))
    # The enqueuer computes ahead: tf.data's autotuning of a generator only adds threads
    # that compete with its workers (epochs alternated between 1.0x and 1.6x the time
    # on 9.6 MB batches). Keras' PyDatasetAdapter sets the same for its own enqueuer.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    dataset = dataset.with_options(options)
    # TensorFlow keeps `one_epoch` alive after a fit, until exit (its py_func registry),
    # so the dataset object owns the feed and `one_epoch` holds it weakly: the workers
    # stop when the dataset (and every iterator of it) is collected.
    dataset._seqpipe_feed = feed
    return dataset


@functools.cache
def _sequence_dataset_class() -> type:
    import keras

    class SequenceDataset(keras.utils.PyDataset):
        """A ``keras.utils.PyDataset`` over a `Sequence`, fed by our `OrderedEnqueuer`.

        See NOTE [ How model.fit reads an as_keras() dataset ] in
        ``parallel/adapters.py``.
        """

        def __init__(
            self, seq: Any, workers: Workers, use_multiprocessing: bool, max_queue_size: int
        ) -> None:
            # Keras runs no workers of its own (see the NOTE); ours are in the feed.
            super().__init__(workers=0, use_multiprocessing=False, max_queue_size=max_queue_size)
            self.sequence = seq
            self.feed = EnqueuerFeed(seq, workers, use_multiprocessing, max_queue_size)
            self._lock = threading.Lock()
            self._in_epoch = False  # between on_epoch_begin and on_epoch_end
            self._in_order = False  # every call of this epoch asked for the next batch
            self._warned = False
            self._metrics: EpochInputMetrics | None = None

        def __len__(self) -> int:
            return len(self.sequence)

        def __getitem__(self, index: int) -> Any:
            with self._lock:
                if self._in_order and index == self.feed.position < len(self.sequence):
                    return as_tuples(self.feed.next_batch())
                if self._in_order:
                    self._in_order = False
                    self._warn_out_of_order(index)
            return as_tuples(self.sequence[index])

        def _warn_out_of_order(self, index: int) -> None:
            if self._warned:
                return
            self._warned = True
            warnings.warn(
                f"batch {index} was asked for while batch {self.feed.position} was next: "
                f"model.fit(shuffle=True), Keras' default, shuffles the batch order, so "
                f"this epoch's remaining batches are computed one at a time in this "
                f"thread. Pass shuffle=False to fit and shuffle in the pipeline "
                f"(Pipeline(..., shuffle=True)) to keep the workers computing ahead.",
                stacklevel=2,
            )

        def on_epoch_begin(self) -> None:
            # Keras' fit calls this from its loop (NOTE [ Finding model.fit's TensorBoard
            # callback ] in parallel/tensorboard_metrics.py).
            log_dir = fit_tensorboard_log_dir()
            with self._lock:
                self._in_epoch = self._in_order = True
                if log_dir is None:
                    self._metrics = None
                    return
                if self._metrics is None or self._metrics.log_dir != log_dir:
                    self._metrics = EpochInputMetrics(self.feed, log_dir)
                    self.feed.enable_monitor()
                self._metrics.begin()

        def on_epoch_end(self) -> None:
            with self._lock:
                if not self._in_epoch:
                    return  # Keras' reset before the first epoch: no epoch has run
                self._in_epoch = self._in_order = False
                epoch = self.feed.epoch
                self.feed.finish_epoch()
                if self._metrics is not None:
                    self._metrics.end(epoch)

        def close(self) -> None:
            """Stops the workers now (they also stop when this dataset is collected)."""
            with self._lock:
                self.feed.stop()

        def __enter__(self) -> SequenceDataset:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return SequenceDataset


def as_keras(
    seq: Any, workers: Workers = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """A ``keras.utils.PyDataset`` over ``seq`` (``model.fit(seq.as_keras())``).

    ``model.fit`` reads it in order from one thread while an `OrderedEnqueuer` with
    ``workers`` workers computes ahead; the workers start at the first batch and are
    kept across epochs and fits, until the dataset's ``close()`` (or the end of a
    ``with`` block), garbage collection or exit. TensorFlow keeps a dataset that
    ``fit`` has read alive until exit, so close it to get the workers back earlier.
    ``on_epoch_end`` of ``seq`` runs once per epoch. Keras' ``fit(shuffle=True)`` (its
    default) asks for batches in a random order, which no enqueuer can compute ahead:
    pass ``shuffle=False`` and shuffle in the `Pipeline` instead (a warning says so).
    Outside ``fit`` an epoch is what lies between ``on_epoch_begin()`` and
    ``on_epoch_end()``; ``ds[i]`` outside one is computed in the calling thread.

    Args:
        seq: the `Sequence` or `Pipeline`.
        workers: enqueuer workers (0: computed in Keras' thread; ``"auto"`` or
            `AutoWorkers`: tuned, with ``use_multiprocessing=True``). Under ``fit`` with
            a ``keras.callbacks.TensorBoard``, the input's metrics are written beside its
            logs (``parallel/tensorboard_metrics.py``).
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches computed ahead.

    Returns:
        The ``keras.utils.PyDataset``.

    Example:
        >>> from seqpipe.pipeline import Pipeline
        >>> with Pipeline((x, y), 64).as_keras(2, True) as ds:  # doctest: +SKIP
        ...     model.fit(ds, epochs=10, shuffle=False)
    """
    return _sequence_dataset_class()(seq, workers, use_multiprocessing, max_queue_size)


provide("Sequence.as_tf_dataset", as_tf_dataset)
provide("Sequence.as_keras", as_keras)
