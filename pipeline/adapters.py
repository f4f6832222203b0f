"""Keras and tf.data adapters for any `Sequence` (TensorFlow is imported lazily here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


def _spec(value: Any) -> Any:
    import tensorflow as tf

    array = np.asarray(value)
    # The sample axis is left open: the last batch of an epoch may be short.
    return tf.TensorSpec(shape=(None, *array.shape[1:]), dtype=tf.as_dtype(array.dtype))


def output_signature(batch: Any) -> Any:
    """`tf.TensorSpec` structure of a batch (tuple, dict or array), batch axis ``None``."""
    if isinstance(batch, dict):
        return {k: _spec(v) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return tuple(_spec(v) for v in batch)
    return _spec(batch)


def epoch_generator(
    seq: Any, workers: int, use_multiprocessing: bool, max_queue_size: int
) -> Callable[[], Iterator[Any]]:
    """A function that yields one epoch of ``seq`` through an `OrderedEnqueuer` per call."""

    def one_epoch() -> Iterator[Any]:
        from parallel import OrderedEnqueuer

        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=use_multiprocessing)
        enqueuer.start(workers=workers, max_queue_size=max_queue_size)
        try:
            for batch in enqueuer.iter_epoch():
                yield tuple(batch) if isinstance(batch, list) else batch
        finally:
            enqueuer.stop()

    return one_epoch


def as_tf_dataset(
    seq: Any, workers: int = 0, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """A re-iterable ``tf.data.Dataset``: each iteration is one epoch of ``seq``.

    Args:
        seq: the `Sequence` or `Pipeline`.
        workers: enqueuer workers (0: read in tf.data's own thread).
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches computed ahead.

    Returns:
        The dataset, with ``output_signature`` inferred from batch 0.
    """
    import tensorflow as tf

    signature = output_signature(seq[0])
    return tf.data.Dataset.from_generator(
        epoch_generator(seq, workers, use_multiprocessing, max_queue_size),
        output_signature=signature,
    )


def as_keras(
    seq: Any, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """A ``keras.utils.PyDataset`` over ``seq`` (``model.fit(seq.as_keras())``)."""
    import keras

    class SequenceDataset(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(
                workers=workers,
                use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size,
            )
            self.sequence = seq

        def __len__(self) -> int:
            return len(self.sequence)

        def __getitem__(self, index: int) -> Any:
            batch = self.sequence[index]
            return tuple(batch) if isinstance(batch, list) else batch

        def on_epoch_end(self) -> None:
            self.sequence.on_epoch_end()

    return SequenceDataset()
