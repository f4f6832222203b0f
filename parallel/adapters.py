"""Keras and tf.data adapters for any `Sequence` (TensorFlow is imported lazily here).

NOTE [ How model.fit reads an as_keras() dataset ]
Keras 3's ``PyDatasetAdapter`` starts its own enqueuer (a ``multiprocessing.Pool`` that
pickles every batch through a pipe, restarted every epoch) when a ``PyDataset`` reports
``workers > 1`` or ``workers > 0 and use_multiprocessing``. Otherwise it calls
``__getitem__`` from its own thread (tf.data's with the TensorFlow backend, the training
loop's with JAX and PyTorch). So the dataset reports ``workers=0`` to Keras and answers
those calls from one `OrderedEnqueuer`, started at the first batch and kept across
epochs and fits, whose workers compute ahead. The rules, the same on every backend:

- A *pass* is what lies between Keras' ``on_epoch_begin()`` and ``on_epoch_end()``.
  Within a pass the k-th call gets the next batch of the pipeline's order, whatever
  index Keras asks for. ``fit(shuffle=True)``, Keras' default, only permutes the batch
  order of each epoch, so overriding it keeps every batch once per epoch and lets the
  workers compute ahead; the pipeline's own ``shuffle`` (a pure function of
  ``(seed, epoch)``) is the one that applies.
- The pipeline's epoch ends when its last batch is delivered (``on_epoch_end`` of the
  sequence runs then, once), not when Keras says so: a pass that stops early is not an
  epoch. When Keras makes a new iterator for the next pass, that pass starts the epoch
  again at its first batch; when it goes on with the same one (``steps_per_epoch``
  smaller than the epoch), so does the epoch. Keras reads ``num_batches`` each time it
  makes an iterator over a ``PyDataset`` (it needs the count to yield), never when it
  goes on with one: that is how the dataset tells the two apart.
- Under the JAX and PyTorch backends ``fit``, ``evaluate`` and ``predict`` read batch 0
  in a pass of their own before training, to build the model, then end that pass. That
  batch is kept and given again as the first batch of the next pass, so fit's epoch
  ``e`` trains the pipeline's epoch ``e`` and the workers are not restarted.
- Calls outside a pass (TensorFlow reads batches 0 and 1 to infer the tensor specs
  before ``fit`` starts) are computed in the calling thread from the current epoch;
  except right after a pass that stopped inside the epoch when Keras has not made a new
  iterator (tf.data's prefetch reading ahead of ``steps_per_epoch``): such a call gets
  the epoch's next batch, as the pass's would have.
- A sharded pipeline of single arrays yields ``(x, sample_weight)``, which Keras would
  read as ``(x, y)``: the dataset gives Keras ``(x, None, sample_weight)`` instead under
  JAX and PyTorch. Keras' TensorFlow backend cannot take ``None`` from a ``PyDataset``
  (its tf.data generator refuses it), so there such a pipeline is refused with a
  ``ValueError`` that says what to do.
"""

from __future__ import annotations

import functools
import threading
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


def keras_batch(seq: Any, batch: Any, backend: str) -> Any:
    """A batch as Keras' ``fit`` reads it: lists become tuples, and a sharded pipeline's
    ``(x, sample_weight)`` becomes ``(x, None, sample_weight)``.

    Keras reads a 2-tuple as ``(x, y)``, so the weights of a sharded single-array
    pipeline would be taken for targets. The JAX and PyTorch backends accept ``None``
    targets (a model whose loss needs no ``y``: ``add_loss``, or its own
    ``compute_loss``); TensorFlow's cannot turn ``None`` into a tensor, so there it is
    refused.

    Raises:
        ValueError: for a sharded single-array batch under the TensorFlow backend.

    Example:
        >>> import numpy as np
        >>> from seqpipe.pipeline import Pipeline
        >>> seq = Pipeline(np.arange(3), batch_size=2).shard(2, 0)
        >>> keras_batch(seq, seq[0], "jax")
        (array([0, 1]), None, array([1., 1.], dtype=float32))
    """
    batch = as_tuples(batch)
    if getattr(seq, "sharded", False) and isinstance(batch, tuple) and len(batch) == 2:
        if backend == "tensorflow":
            raise ValueError(
                "a sharded pipeline without targets yields (x, sample_weight), which "
                "Keras reads as (x, y), and Keras' TensorFlow backend cannot take "
                "(x, None, sample_weight) from a PyDataset. Give the pipeline targets "
                "(Pipeline((x, y)); Pipeline((x, x)) for an autoencoder), or use the "
                "JAX or PyTorch backend, or do not shard it"
            )
        return (batch[0], None, batch[1])
    return batch


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
            self.backend = keras.backend.backend()
            if getattr(seq, "sharded", False) and getattr(seq, "structure", None) == "single":
                keras_batch(seq, (None, None), self.backend)  # refused up front on TF
            self.feed = EnqueuerFeed(seq, workers, use_multiprocessing, max_queue_size)
            self._lock = threading.Lock()
            self._in_pass = False  # between on_epoch_begin and on_epoch_end
            self._pass_reads = 0  # calls answered in this pass
            # Keras reads `num_batches` whenever it makes a new iterator over this
            # dataset, and not when it goes on with one (see the NOTE).
            self._new_iterator = False
            # Batch 0 of the feed's epoch while it is the only batch delivered: given
            # again if a pass that read only it is followed by one starting over.
            self._first: Any = None
            self._restart_pending = False  # the last pass stopped inside an epoch
            self._metrics: EpochInputMetrics | None = None  # with a TensorBoard callback
            self._pass_epoch = 0  # the pipeline's epoch when the pass began

        @property
        def num_batches(self) -> int:
            self._new_iterator = True
            return len(self.sequence)

        def __len__(self) -> int:
            return len(self.sequence)

        def __getitem__(self, index: int) -> Any:
            with self._lock:
                # Outside a pass: TensorFlow's look at the first batches, computed here;
                # or a read-ahead of tf.data's prefetch that landed after Keras ended a
                # pass of an iterator it goes on with, which belongs to the epoch.
                if not self._in_pass and (self._new_iterator or not self._restart_pending):
                    return keras_batch(self.sequence, self.sequence[index], self.backend)
                if self._pass_reads == 0 and self._restart_pending:
                    self._restart_pending = False
                    if self._new_iterator:  # Keras starts over: so does the epoch
                        if self.feed.position == 1 and self._first is not None:
                            self._pass_reads += 1
                            self._new_iterator = False
                            return self._first
                        self.feed.rewind()
                self._pass_reads += 1
                self._new_iterator = False
                return self._next_in_order()

        def _next_in_order(self) -> Any:
            batch = keras_batch(self.sequence, self.feed.next_batch(), self.backend)
            self._first = batch if self.feed.position == 1 else None
            if self.feed.position == len(self.sequence):
                self.feed.finish_epoch()  # now: Keras may never ask past the end
            return batch

        def on_epoch_begin(self) -> None:
            # Keras' fit calls this from its loop (NOTE [ Finding model.fit's TensorBoard
            # callback ] in parallel/tensorboard_metrics.py).
            log_dir = fit_tensorboard_log_dir()
            with self._lock:
                self._in_pass, self._pass_reads = True, 0
                self._pass_epoch = self.feed.epoch
                if log_dir is None:
                    self._metrics = None
                    return
                if self._metrics is None or self._metrics.log_dir != log_dir:
                    self._metrics = EpochInputMetrics(self.feed, log_dir)
                    self.feed.enable_monitor()
                self._metrics.begin()

        def on_epoch_end(self) -> None:
            with self._lock:
                ended_a_pass, self._in_pass = self._in_pass, False
                # Keras' reset before its first epoch ends no pass; a pass that stopped
                # inside the pipeline's epoch leaves it open for the next pass.
                self._restart_pending = self.feed.position > 0
                if ended_a_pass and self._metrics is not None:
                    self._metrics.end(self._pass_epoch)

        def close(self) -> None:
            """Stops the workers now (they also stop when this dataset is collected)."""
            with self._lock:
                self.feed.stop()
                self._first = None

        def __enter__(self) -> SequenceDataset:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return SequenceDataset


def as_keras(
    seq: Any, workers: Workers = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """A ``keras.utils.PyDataset`` over ``seq`` (``model.fit(seq.as_keras())``).

    Works under every Keras 3 backend (TensorFlow, JAX, PyTorch), the same way: see
    NOTE [ How model.fit reads an as_keras() dataset ] in ``parallel/adapters.py``.
    ``model.fit``, ``evaluate`` and ``predict`` read it from one thread while an
    `OrderedEnqueuer` with ``workers`` workers computes ahead; the workers start at the
    first batch and are kept across epochs and fits, until the dataset's ``close()``
    (or the end of a ``with`` block), garbage collection or exit. TensorFlow keeps a
    dataset that ``fit`` has read alive until exit, so close it to get the workers back
    earlier. Every batch is delivered once per epoch, and fit's epoch ``e`` is the
    pipeline's epoch ``e``; ``on_epoch_end`` of ``seq`` runs once per epoch, when its
    last batch is delivered.

    What Keras does differently, overridden here:

    - ``fit(shuffle=True)`` (Keras' default) is overridden: batches come in the
      pipeline's order, as fast as with ``shuffle=False``. Shuffle in the `Pipeline`
      (``Pipeline(..., shuffle=True, seed=S)``), which draws a new order every epoch.
    - Keras' look at batch 0 before training (JAX and PyTorch backends) is not counted
      as an epoch.
    - A sharded pipeline of single arrays gives Keras ``(x, None, sample_weight)``,
      not ``(x, sample_weight)``, which Keras would read as ``(x, y)`` (JAX and
      PyTorch backends); the TensorFlow backend cannot take ``None`` targets, so
      there it is refused.

    Read by hand, ``on_epoch_begin()`` starts a pass as it does for Keras; ``ds[i]``
    outside a pass is computed in the calling thread.

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

    Raises:
        ValueError: for a sharded pipeline of single arrays under Keras' TensorFlow
            backend (see above).

    Example:
        >>> from seqpipe.pipeline import Pipeline
        >>> with Pipeline((x, y), 64).as_keras(2, True) as ds:  # doctest: +SKIP
        ...     model.fit(ds, epochs=10)
    """
    return _sequence_dataset_class()(seq, workers, use_multiprocessing, max_queue_size)


provide("Sequence.as_tf_dataset", as_tf_dataset)
provide("Sequence.as_keras", as_keras)
