"""`ReplicaMetrics`: a compiled model's metrics, computed exactly once across replicas.

NOTE [ Exactly-once metrics across replicas ]
The template's ``metrics`` and ``weighted_metrics`` are rebuilt (fresh instances, from
its compile config) under the strategy, with Keras' own ``CompileMetrics``, so names,
``"accuracy"`` resolution and ``weighted_`` prefixes are exactly Keras'. Keras gives
metric variables ``synchronization="on_read"``: each replica updates its own copy and
a read in cross-replica context sums the copies across replicas and workers. Before
the update every replica drops its padding rows (``real == 0``; see NOTE [ Exactly-once
loss across replicas ] in ``parallel/trainer.py``), so unweighted metrics see every
sample once and weighted metrics see it with its sample weight. A metric whose state
does not sum (a variable with another aggregation) cannot be combined this way and is
refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _fresh(serialized: Any) -> Any:
    import keras

    if not serialized:
        return None
    try:
        return keras.saving.deserialize_keras_object(serialized)
    except Exception as error:
        raise ValueError(
            f"MultiGPUTrainer rebuilds compiled metrics on every replica from the compile "
            f"config, and cannot rebuild {serialized!r}: {error}. Register custom metrics "
            f"with keras.saving.register_keras_serializable()"
        ) from error


class ReplicaMetrics:
    """The template's compiled metrics, built in the strategy's scope.

    Args:
        template: the compiled template model.
        strategy: the ``tf.distribute`` strategy (its scope must be entered by the
            caller, so that the metric variables are per-replica).
        y: an example batch of targets (metrics resolve ``"accuracy"`` from shapes).
        pred: the model's predictions for it.

    Raises:
        ValueError: for a metric that cannot be aggregated across replicas, or that
            cannot be rebuilt from the compile config.

    Example:
        >>> with strategy.scope():                                  # doctest: +SKIP
        ...     metrics = ReplicaMetrics(model, strategy, y0, model(x0))
        >>> metrics.names                                           # doctest: +SKIP
        ['accuracy']
    """

    def __init__(self, template: Any, strategy: Any, y: Any, pred: Any) -> None:
        # Keras' own container (what model.compile uses): Keras' names and resolution.
        from keras.src.trainers.compile_utils import CompileMetrics

        config = template.get_compile_config()
        metrics = _fresh(config.get("metrics"))
        weighted = _fresh(config.get("weighted_metrics"))
        self.strategy = strategy
        self._container = None
        self.names: list[str] = []
        if metrics or weighted:
            container = CompileMetrics(
                metrics, weighted, output_names=getattr(template, "output_names", None)
            )
            container.build(y, pred)
            self._container = container
            self.names = [m.name for m in container.metrics]
            _check_summable(container.metrics)

    @property
    def variables(self) -> list[Any]:
        """The metric state variables (per-replica, summed on read)."""
        return list(self._container.variables) if self._container else []

    def update(self, y: Any, pred: Any, w: Any, real: Any) -> None:
        """Adds one replica's slice (call in replica context); padding rows are dropped."""
        import tensorflow as tf

        if self._container is None:
            return
        keep = real > 0

        def drop_padding(value: Any) -> Any:
            return tf.boolean_mask(value, keep)

        y, pred = tf.nest.map_structure(drop_padding, (y, pred))
        pred = tf.nest.map_structure(lambda p: tf.cast(p, tf.float32), pred)
        self._container.update_state(y, pred, sample_weight=drop_padding(w))

    def results(self) -> dict[str, Any]:
        """Metric values over everything added since `reset` (cross-replica context)."""
        return dict(self._container.result()) if self._container else {}

    def reset(self) -> None:
        """Zeroes every replica's state (call at the start of an epoch or evaluation)."""
        if self._container is not None:
            self._container.reset_state()

    def totals(self) -> list[np.ndarray]:
        """The state summed across replicas and workers, for a backup."""
        return [np.asarray(v.numpy()) for v in self.variables]

    def set_totals(self, totals: list[np.ndarray], chief: bool) -> None:
        """Restores `totals`: the first replica of the chief worker holds them, every
        other replica holds zeros, so a summing read gives `totals` back."""
        for variable, total in zip(self.variables, totals, strict=True):
            local = self.strategy.experimental_local_results(variable.value)
            for i, component in enumerate(local):
                value = total if (chief and i == 0) else np.zeros_like(total)
                component.assign(np.asarray(value, dtype=component.dtype.as_numpy_dtype))


def _check_summable(metrics: list[Any]) -> None:
    for metric in metrics:
        for variable in metric.variables:
            if variable.aggregation != "sum":
                raise ValueError(
                    f"metric {metric.name!r} cannot be aggregated across replicas: its "
                    f"state variable {variable.name!r} has aggregation="
                    f"{variable.aggregation!r}, and MultiGPUTrainer sums metric states "
                    f"across replicas and workers (aggregation='sum'). Use a metric whose "
                    f"state is a sum, e.g. keras.metrics.Mean or a MeanMetricWrapper"
                )


def in_keras_order(logs: dict[str, Any], names: list[str]) -> Any:
    """What Keras' ``evaluate(return_dict=False)`` returns for ``logs``.

    The loss, then the compiled metrics in order, then other entries by name; a single
    value is returned as a scalar.

    Example:
        >>> in_keras_order({"loss": 0.5}, [])
        0.5
        >>> in_keras_order({"weighted_acc": 3, "acc": 2, "loss": 1}, ["acc"])
        [1, 2, 3]
    """
    ordered = [n for n in ["loss", *names] if n in logs]
    ordered += sorted(k for k in logs if k not in ordered)
    values = [logs[k] for k in ordered]
    return values[0] if len(values) == 1 else values
