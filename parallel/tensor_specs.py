"""TensorFlow type specs of batches, for ``tf.data`` generators (TensorFlow is imported
when called)."""

from __future__ import annotations

from typing import Any

import numpy as np


def output_signature(batch: Any) -> Any:
    """`tf.TensorSpec` structure of a batch, with the sample axis left open.

    The last batch of an epoch may be short, so the leading axis is ``None``. Lists
    become tuples, as the generators that use the signature yield them.

    Args:
        batch: an array, or a tuple, list or dict of them (nested).

    Returns:
        The same structure of ``tf.TensorSpec``.

    Example:
        >>> output_signature((np.zeros((4, 2)), {"y": np.zeros(4, np.int64)}))  # doctest: +SKIP
        (TensorSpec(shape=(None, 2), dtype=tf.float64, name=None),
         {'y': TensorSpec(shape=(None,), dtype=tf.int64, name=None)})
    """
    import tensorflow as tf

    def spec(value: Any) -> Any:
        array = np.asarray(value)
        return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))

    return tf.nest.map_structure(spec, as_tuples(batch))


def as_tuples(batch: Any) -> Any:
    """Returns ``batch`` with its lists turned into tuples, at every level.

    Example:
        >>> as_tuples([1, {"a": [2, 3]}])
        (1, {'a': (2, 3)})
    """
    if isinstance(batch, dict):
        return {k: as_tuples(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return tuple(as_tuples(v) for v in batch)
    return batch
