"""The replicas a `MultiGPUTrainer` trains: cloned from the template model under a
``tf.distribute`` strategy, their compiled train and evaluation steps, and the copies
between them and the template. TensorFlow and Keras are imported when used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .feed import Feed
from .loss_scale import agree_on_finite, uses_loss_scaling
from .losses import ReplicaLoss
from .metrics import ReplicaMetrics
from .tensor_specs import output_signature


@dataclass
class Replicas:
    """What one strategy trains and evaluates with (built once per `fit`)."""

    strategy: Any
    num_workers: int
    worker: int
    model: Any
    optimizer: Any
    loss: ReplicaLoss
    metrics: ReplicaMetrics
    eval_step: Any = None

    @property
    def local_replicas(self) -> int:
        return max(1, self.strategy.num_replicas_in_sync // self.num_workers)


def replicate(
    template: Any, strategy: Any, num_workers: int, worker: int, example: Any
) -> Replicas:
    """Clones ``template`` (weights, optimizer, compiled loss and metrics) under
    ``strategy``; ``example`` is a batch ``(x, y, ...)`` that builds the metrics."""
    import keras

    with strategy.scope():
        model = keras.models.clone_model(template)
        if not model.built:
            model.build_from_config(template.get_build_config())
        model.set_weights(template.get_weights())
        optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(template.optimizer))
        optimizer.build(model.trainable_variables)
        if template.optimizer.built:
            # A second fit, or a fit after model.fit: Keras continues the optimizer's
            # moments, iteration count (learning-rate schedules) and loss scale.
            assign_optimizer(optimizer, [v.numpy() for v in template.optimizer.variables])
        x, y = example[0], example[1]
        metrics = ReplicaMetrics(template, strategy, y, model(x, training=False))
    # Builds the template's own compiled metrics, as model.fit would: callbacks such
    # as EarlyStopping(monitor="val_accuracy") read their direction from them.
    template.compute_metrics(x, y, template(x, training=False))
    template.reset_metrics()
    loss = ReplicaLoss(template, y, template(x, training=False))
    return Replicas(strategy, num_workers, worker, model, optimizer, loss, metrics)


def distributed_iterator(strategy: Any, feed: Feed) -> Any:
    """An iterator of ``feed``'s per-replica slices, distributed by ``strategy``."""
    import tensorflow as tf

    signature = output_signature(feed.first())

    def dataset_fn(context: Any) -> Any:
        dataset = tf.data.Dataset.from_generator(feed.slices, output_signature=signature)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF  # each worker reads its own shard
        )
        return dataset.with_options(options)

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def make_train_step(r: Replicas, element_spec: Any) -> Any:
    """The compiled step: one global batch in; out, the loss totals (`ReplicaLoss.
    step_totals`: NOTE [ Per-output losses ] in ``parallel/losses.py``), the count of
    real samples and the metrics (NOTE [ Exactly-once loss across replicas ] in
    ``parallel/trainer.py``)."""
    import tensorflow as tf

    variables = r.model.trainable_variables
    scaling = uses_loss_scaling(r.optimizer)
    sum_op = tf.distribute.ReduceOp.SUM

    def step(x: Any, y: Any, w: Any, real: Any) -> Any:
        context = tf.distribute.get_replica_context()
        count = context.all_reduce(sum_op, tf.reduce_sum(real))
        with tf.GradientTape() as tape:
            pred = r.model(x, training=True)
            totals = r.loss.step_totals(r.loss.values(y, pred), w, count)
            loss = tf.math.divide_no_nan(totals[0], count)
            if r.model.losses:
                loss += tf.add_n(r.model.losses) / r.strategy.num_replicas_in_sync
            scaled = r.optimizer.scale_loss(loss)  # NOTE [ Loss scaling across replicas ]
        grads = tape.gradient(scaled, variables)
        if scaling:
            grads = agree_on_finite(grads)
        r.optimizer.apply_gradients(zip(grads, variables, strict=True))
        r.metrics.update(y, pred, w, real)
        return totals, tf.reduce_sum(real)

    # The batch is fetched outside (timed as input_wait); the signature's open batch
    # axis keeps the uneven last batch from tracing a second function.
    @tf.function(input_signature=[element_spec])
    def train_step(batch: Any) -> Any:
        weighted, count = r.strategy.run(step, args=batch)
        totals = (
            r.strategy.reduce(sum_op, weighted, None),
            r.strategy.reduce(sum_op, count, None),
        )
        return totals, r.metrics.results()

    return train_step


def eval_step_of(r: Replicas) -> Any:
    """The compiled evaluation step of ``r`` (built once): the loss totals (as in
    `make_train_step`) and the count of real samples."""
    import tensorflow as tf

    if r.eval_step is None:
        sum_op = tf.distribute.ReduceOp.SUM

        def step(x: Any, y: Any, w: Any, real: Any) -> Any:
            context = tf.distribute.get_replica_context()
            count = context.all_reduce(sum_op, tf.reduce_sum(real))
            pred = r.model(x, training=False)
            r.metrics.update(y, pred, w, real)
            return r.loss.step_totals(r.loss.values(y, pred), w, count), tf.reduce_sum(real)

        @tf.function
        def eval_step(iterator: Any) -> Any:
            weighted, count = r.strategy.run(step, args=next(iterator))
            return r.strategy.reduce(sum_op, weighted, None), r.strategy.reduce(sum_op, count, None)

        r.eval_step = eval_step
    return r.eval_step


def assign_optimizer(optimizer: Any, values: list[Any]) -> None:
    """Sets an optimizer's variables (iterations, learning rate, moments, loss scale).

    Raises:
        ValueError: if ``values`` does not hold one value per variable, or a shape differs.
    """
    variables = optimizer.variables
    shapes = [tuple(v.shape) for v in variables]
    given = [tuple(np.shape(value)) for value in values]
    if shapes != given:
        raise ValueError(
            f"cannot restore the optimizer state: {len(values)} values of shapes {given} "
            f"for {len(variables)} variables of shapes {shapes}. Was the optimizer or the "
            f"model changed?"
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def pull_template(template: Any, r: Replicas) -> None:
    """Copies the replicas' weights and optimizer state into the template."""
    template.set_weights(r.model.get_weights())
    if not template.optimizer.built:
        template.optimizer.build(template.trainable_variables)
    assign_optimizer(template.optimizer, [v.numpy() for v in r.optimizer.variables])


def push_learning_rate(template: Any, r: Replicas) -> None:
    """Hands a learning rate set on the template (``LearningRateScheduler``,
    ``ReduceLROnPlateau``) to the replicas.

    Read through ``optimizer.learning_rate``, which a ``LossScaleOptimizer`` forwards to
    its inner optimizer, so it works under ``mixed_float16`` too. A schedule is left
    alone: the replicas' optimizer has the same one, driven by the iterations it keeps.
    """
    inner = getattr(template.optimizer, "inner_optimizer", template.optimizer)
    if isinstance(inner.get_config().get("learning_rate"), dict):  # a serialized schedule
        return
    r.optimizer.learning_rate = float(np.asarray(template.optimizer.learning_rate))
