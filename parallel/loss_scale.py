"""Mixed precision in the trainer: Keras' `LossScaleOptimizer`, made replica-safe.

NOTE [ Loss scaling across replicas ]
Under ``mixed_float16`` Keras wraps the optimizer in ``LossScaleOptimizer``. The trainer
multiplies the loss by ``optimizer.scale_loss`` and passes the scaled gradients to
``optimizer.apply_gradients``, which unscales them, skips a step whose gradients are
not finite, and halves or doubles the dynamic scale: all of that is Keras' code. One
gap remains: under ``tf.distribute`` the optimizer decides "finite?" from the first
replica's *local* gradients, so an overflow on another replica would pass the check and
reach the weights through the all-reduce. `agree_on_finite` closes it: replicas
all-reduce a non-finite flag first, and when any replica overflowed every replica's
gradients become NaN, so Keras' check skips the step everywhere and lowers the scale.
"""

from __future__ import annotations

from typing import Any


def uses_loss_scaling(optimizer: Any) -> bool:
    """Whether ``optimizer`` is Keras' ``LossScaleOptimizer`` (``mixed_float16``)."""
    import keras

    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def agree_on_finite(grads: list[Any]) -> list[Any]:
    """Makes every replica's gradients non-finite when any replica's are (replica context).

    Args:
        grads: this replica's gradients (``None`` entries allowed).

    Returns:
        The gradients unchanged when all replicas are finite, else NaN everywhere.
    """
    import tensorflow as tf

    present = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
    bad = tf.cast(
        tf.logical_not(tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in present])),
        tf.float32,
    )
    context = tf.distribute.get_replica_context()
    any_bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad) > 0
    poison = tf.where(any_bad, float("nan"), 0.0)

    def poisoned(g: Any) -> Any:
        if isinstance(g, tf.IndexedSlices):  # sparse gradients (embeddings)
            return tf.IndexedSlices(poisoned(g.values), g.indices, g.dense_shape)
        return g + tf.cast(poison, g.dtype)

    return [None if g is None else poisoned(g) for g in grads]
