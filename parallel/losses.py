"""`ReplicaLoss`: a compiled model's loss as per-sample values, one per output.

NOTE [ Per-output losses ]
Keras resolves a model's losses against its outputs (one loss, a list or a dict of them,
``loss_weights``, the output names) in its ``CompileLoss``; one is built from the
template's compile config, so the resolution is Keras' own. Each output's loss is taken
per sample (the loss function unreduced, averaged over the other axes) in float32, and
the total per sample is ``sum_o loss_weight_o * l_o``. Summed with the sample weights
over real samples and divided by the global count of real samples (NOTE [ Exactly-once
loss across replicas ] in ``parallel/trainer.py``), the total is Keras'
``sum_o loss_weight_o * sum_over_batch_size(w * l_o)``, and the logged ``loss`` is its
average over the epoch's samples, as Keras' is. For a model with several outputs Keras
also logs ``<output>_loss``, without the loss weight, and as the plain mean over steps of
each step's ``sum(w * l_o) / n`` (a short last step counts as much as a full one, so
these do not add up to ``loss``); they are computed the same way here, from each global
step's value (`logs`).
"""

from __future__ import annotations

from typing import Any


def per_sample(loss_fn: Any, y: Any, pred: Any) -> Any:
    """The unreduced loss of every sample, as float32 of shape ``(n,)``."""
    import tensorflow as tf

    # Keras computes losses in float32 whatever the compute dtype (mixed precision).
    pred = tf.nest.map_structure(lambda p: tf.cast(p, tf.float32), pred)
    values = loss_fn.call(y, pred) if hasattr(loss_fn, "call") else loss_fn(y, pred)
    values = tf.convert_to_tensor(values)
    if values.shape.rank and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return tf.cast(values, tf.float32)


class ReplicaLoss:
    """The template's compiled loss, per sample and per output (NOTE [ Per-output losses ]).

    Args:
        template: the compiled template model.
        y: an example batch of targets (Keras resolves losses from their structure).
        pred: the model's predictions for it.

    Raises:
        ValueError: what Keras raises for losses that do not fit the outputs.

    Example:
        >>> loss = ReplicaLoss(model, y0, model(x0))               # doctest: +SKIP
        >>> loss.names                                              # doctest: +SKIP
        ['reg_loss', 'cls_loss']
    """

    def __init__(self, template: Any, y: Any, pred: Any) -> None:
        # Keras' own container (what model.compile uses), as for the metrics.
        from keras.src.trainers.compile_utils import CompileLoss

        config = template.get_compile_config()
        container = CompileLoss(
            template.loss,
            config.get("loss_weights"),
            output_names=getattr(template, "output_names", None),
        )
        container.build(y, pred)
        self._container = container
        self._parts = [(p.path, p.loss, p.loss_weights) for p in container._flat_losses]
        names = [f"{p.name}_loss" for p in container._flat_losses]
        # Keras logs the outputs' own losses only when there are several.
        self.names: list[str] = names if len(names) > 1 else []

    def values(self, y: Any, pred: Any) -> list[Any]:
        """Per-sample ``[total, *one per output in names]`` (just ``[total]`` for one)."""
        import keras

        c = self._container
        # Keras packs targets and predictions into the structures it was built with
        # (a tuple of targets for a dict of outputs, say), as CompileLoss.call does.
        y = keras.tree.pack_sequence_as(c._y_true_build_structure, keras.tree.flatten(y))
        pred = keras.tree.pack_sequence_as(c._y_pred_build_structure, keras.tree.flatten(pred))
        parts = []
        total = 0.0
        for path, loss_fn, weight in self._parts:
            y_part, pred_part = y, pred
            for key in path:
                y_part, pred_part = y_part[key], pred_part[key]
            value = per_sample(loss_fn, y_part, pred_part)
            parts.append(value)
            total = total + (value if weight is None else value * weight)
        return [total, *parts] if self.names else [total]

    def step_totals(self, values: list[Any], w: Any, count: Any) -> Any:
        """One replica's share of a step, to sum over replicas and steps: the weighted
        sum of the total loss, then each output's ``sum(w * l_o) / count`` (``count``:
        the step's real samples over all replicas)."""
        import tensorflow as tf

        sums = [tf.reduce_sum(v * w) for v in values]
        parts = [tf.math.divide_no_nan(s, count) for s in sums[1:]]
        return tf.stack([sums[0], *parts])

    def logs(self, totals: Any, count: Any, steps: int) -> dict[str, Any]:
        """``{"loss": ..., "<output>_loss": ...}`` from `step_totals` summed over replicas
        and ``steps`` steps, and the count of real samples they held (NOTE [ Per-output
        losses ])."""
        import tensorflow as tf

        logs = {"loss": tf.math.divide_no_nan(totals[0], count)}
        logs.update({name: totals[i + 1] / max(steps, 1) for i, name in enumerate(self.names)})
        return logs
