"""The replicas a `MultiGPUTrainer` trains: cloned from the template model under a
``tf.distribute`` strategy, their compiled train and evaluation steps, and the copies
between them and the template. TensorFlow and Keras are imported when used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .feed import Feed
from .loss_scale import agree_on_finite, uses_loss_scaling
from .metrics import ReplicaMetrics
from .tensor_specs import output_signature


def _per_sample(loss_obj: Any, y: Any, pred: Any) -> Any:
    import tensorflow as tf

    # Keras computes losses in float32 whatever the compute dtype (mixed precision).
    pred = tf.nest.map_structure(lambda p: tf.cast(p, tf.float32), pred)
    values = loss_obj.call(y, pred) if hasattr(loss_obj, "call") else loss_obj(y, pred)
    values = tf.convert_to_tensor(values)
    if values.shape.rank and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return tf.cast(values, tf.float32)


@dataclass
class Replicas:
    """What one strategy trains and evaluates with (built once per `fit`)."""

    strategy: Any
    num_workers: int
    worker: int
    model: Any
    optimizer: Any
    loss: Any
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
        x, y = example[0], example[1]
        metrics = ReplicaMetrics(template, strategy, y, model(x, training=False))
    # Builds the template's own compiled metrics, as model.fit would: callbacks such
    # as EarlyStopping(monitor="val_accuracy") read their direction from them.
    template.compute_metrics(x, y, template(x, training=False))
    template.reset_metrics()
    loss = template.loss
    loss_obj = keras.losses.get(loss) if isinstance(loss, str) else loss
    return Replicas(strategy, num_workers, worker, model, optimizer, loss_obj, metrics)


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
    """The compiled step: one global batch in, the summed loss, count and metrics out
    (NOTE [ Exactly-once loss across replicas ] in ``parallel/trainer.py``)."""
    import tensorflow as tf

    variables = r.model.trainable_variables
    scaling = uses_loss_scaling(r.optimizer)
    sum_op = tf.distribute.ReduceOp.SUM

    def step(x: Any, y: Any, w: Any, real: Any) -> Any:
        context = tf.distribute.get_replica_context()
        count = context.all_reduce(sum_op, tf.reduce_sum(real))
        with tf.GradientTape() as tape:
            pred = r.model(x, training=True)
            weighted = tf.reduce_sum(_per_sample(r.loss, y, pred) * w)
            loss = tf.math.divide_no_nan(weighted, count)
            if r.model.losses:
                loss += tf.add_n(r.model.losses) / r.strategy.num_replicas_in_sync
            scaled = r.optimizer.scale_loss(loss)  # NOTE [ Loss scaling across replicas ]
        grads = tape.gradient(scaled, variables)
        if scaling:
            grads = agree_on_finite(grads)
        r.optimizer.apply_gradients(zip(grads, variables, strict=True))
        r.metrics.update(y, pred, w, real)
        return weighted, tf.reduce_sum(real)

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
    """The compiled evaluation step of ``r`` (built once): the summed loss and count."""
    import tensorflow as tf

    if r.eval_step is None:
        sum_op = tf.distribute.ReduceOp.SUM

        def step(x: Any, y: Any, w: Any, real: Any) -> Any:
            pred = r.model(x, training=False)
            r.metrics.update(y, pred, w, real)
            return tf.reduce_sum(_per_sample(r.loss, y, pred) * w), tf.reduce_sum(real)

        @tf.function
        def eval_step(iterator: Any) -> Any:
            weighted, count = r.strategy.run(step, args=next(iterator))
            return r.strategy.reduce(sum_op, weighted, None), r.strategy.reduce(sum_op, count, None)

        r.eval_step = eval_step
    return r.eval_step


def pull_template(template: Any, r: Replicas) -> None:
    """Copies the replicas' weights and optimizer state into the template."""
    template.set_weights(r.model.get_weights())
    if not template.optimizer.built:
        template.optimizer.build(template.trainable_variables)
    for mine, theirs in zip(template.optimizer.variables, r.optimizer.variables, strict=True):
        mine.assign(theirs.numpy())


def push_learning_rate(template: Any, r: Replicas) -> None:
    """Hands a learning rate set on the template (ReduceLROnPlateau) to the replicas."""
    if isinstance(template.optimizer.get_config().get("learning_rate"), float | int):
        r.optimizer.learning_rate = float(np.asarray(template.optimizer.learning_rate))
