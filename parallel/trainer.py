"""`MultiGPUTrainer`: trains a Keras model on a pipeline with ``tf.distribute``.

NOTE [ Exactly-once loss across replicas ]
Each global batch is split into contiguous per-replica slices (uneven sizes allowed,
down to 0 rows). Every replica computes ``sum(w * loss) / W`` where ``W`` is the sum of
the sample weights of the *whole* global batch (all replicas, all workers), obtained by
an all-reduce inside the step; the gradients are then summed across replicas. So each
real sample contributes its loss exactly once per epoch with the same weight as on one
device, whatever the replica count, and padding rows (weight 0) contribute nothing.
Workers of a multi-worker run read their own shard, and shards have equal step counts,
so no worker waits for a step another does not take.

The training loop is our own (``strategy.run``), driving Keras callbacks, History and
progress bar through the public callback API: Keras 3's ``model.fit`` fails under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), and a one-shot generator
loses batches under a strategy.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np

from pipeline import Pipeline
from pipeline.adapters import epoch_generator, output_signature

from .devices import resolve_devices

_COLLECTIVE_TIMEOUT_S = 120


def _as_pipeline(seq: Any) -> Pipeline:
    return seq if isinstance(seq, Pipeline) else Pipeline(seq)


def _xyw(batch: Any) -> tuple[Any, Any, np.ndarray]:
    """``(x, y[, w])`` with unit weights filled in."""
    if isinstance(batch, dict) or not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise ValueError(
            f"MultiGPUTrainer needs (x, y) or (x, y, sample_weight) batches. "
            f"Received a {type(batch).__name__}"
        )
    x, y = batch[0], batch[1]
    w = batch[2] if len(batch) == 3 else np.ones(len(np.asarray(y)), dtype=np.float32)
    return x, y, np.asarray(w, dtype=np.float32)


def _cluster() -> tuple[int, int]:
    """(number of workers, this worker's index) from ``TF_CONFIG``."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    task = config.get("task", {})
    return max(len(workers), 1), int(task.get("index", 0)) if task.get("type") == "worker" else 0


_MULTI_WORKER_STRATEGY: Any = None


def multi_worker_strategy() -> Any:
    """The ``MultiWorkerMirroredStrategy`` of this process, from ``TF_CONFIG``.

    TensorFlow configures collective ops only at program start, so a multi-worker
    program calls this first, before it builds any model or runs any TensorFlow op;
    `MultiGPUTrainer.fit` then uses the same strategy. Collectives time out after 120 s
    instead of hanging when a peer never joins.

    Returns:
        The strategy (created once per process).

    Raises:
        RuntimeError: if TensorFlow was already initialised, saying what to do.
    """
    global _MULTI_WORKER_STRATEGY
    if _MULTI_WORKER_STRATEGY is None:
        import tensorflow as tf

        experimental = tf.distribute.experimental
        options = experimental.CommunicationOptions(
            implementation=experimental.CommunicationImplementation.RING,
            timeout_seconds=_COLLECTIVE_TIMEOUT_S,
        )
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as error:
            raise RuntimeError(
                "TF_CONFIG asks for several workers, but TensorFlow was initialised before "
                "the multi-worker strategy was created. Call parallel.multi_worker_strategy() "
                "at the start of the program, before building the model"
            ) from error
        _MULTI_WORKER_STRATEGY = strategy
    return _MULTI_WORKER_STRATEGY


class MultiGPUTrainer:
    """Trains, evaluates and predicts with a Keras model on one or many devices.

    One machine: ``tf.distribute.MirroredStrategy`` over the chosen devices
    (``cpu_merge=True`` reduces through the CPU; ``False`` uses NCCL all-reduce on GPUs
    and a reduction on the first device elsewhere). Several machines (``TF_CONFIG`` with several
    workers): ``MultiWorkerMirroredStrategy``, each worker reading
    ``seq.shard(num_workers, worker_index)``. The template model is cloned under the
    strategy; its weights are updated after every epoch, so it is what you save.

    Args:
        model: a compiled Keras model (the template).
        cpu_merge: reduce gradients through the CPU.
        cpu_relocation: accepted for the seed's signature; the template is always
            cloned into the strategy's scope, which is what relocation achieved.

    Raises:
        ValueError: if the model is not compiled.

    Example:
        >>> trainer = MultiGPUTrainer(model)                     # doctest: +SKIP
        >>> history = trainer.fit(seq, gpus=8, epochs=10)         # doctest: +SKIP
    """

    def __init__(self, model: Any, cpu_merge: bool = True, cpu_relocation: bool = False):
        if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
            raise ValueError("MultiGPUTrainer needs a compiled model: call model.compile()")
        self.model = model
        self.cpu_merge = cpu_merge
        self.cpu_relocation = cpu_relocation
        self._setup: tuple[Any, ...] | None = None
        self.devices: list[str] = []

    # -- strategy and replicas -----------------------------------------------------------

    def _strategy(self, gpus: Any, devices: Seq[str] | None) -> tuple[Any, int, int]:
        import tensorflow as tf

        num_workers, index = _cluster()
        if num_workers > 1:
            return multi_worker_strategy(), num_workers, index
        self.devices = list(devices) if devices else resolve_devices(gpus)
        if self.cpu_merge:
            ops = tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0")
        elif all("gpu" in d.lower() for d in self.devices):
            ops = tf.distribute.NcclAllReduce()
        else:
            # NCCL has no CPU kernel (it builds, then fails at the first step), and
            # HierarchicalCopyAllReduce was measured wrong on logical CPU devices (weights
            # 0.15 off a one-device run): reduce on the first device instead.
            ops = tf.distribute.ReductionToOneDevice(reduce_to_device=self.devices[0])
        return tf.distribute.MirroredStrategy(self.devices, cross_device_ops=ops), 1, 0

    def _replicate(self, strategy: Any) -> tuple[Any, Any, Any]:
        import keras

        template = self.model
        with strategy.scope():
            replica = keras.models.clone_model(template)
            replica.build_from_config(template.get_build_config()) if not replica.built else None
            replica.set_weights(template.get_weights())
            optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(template.optimizer))
            optimizer.build(replica.trainable_variables)
        loss = template.loss
        loss_obj = keras.losses.get(loss) if isinstance(loss, str) else loss
        return replica, optimizer, loss_obj

    @staticmethod
    def _per_sample(loss_obj: Any, y: Any, pred: Any) -> Any:
        import tensorflow as tf

        values = loss_obj.call(y, pred) if hasattr(loss_obj, "call") else loss_obj(y, pred)
        values = tf.convert_to_tensor(values)
        if values.shape.rank and values.shape.rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
        return tf.cast(values, tf.float32)

    # -- the distributed input -----------------------------------------------------------

    def _distributed(
        self, strategy: Any, seq: Pipeline, workers: int, multiprocessing: bool, repeat: bool
    ) -> Any:
        import tensorflow as tf

        x0, y0, w0 = _xyw(seq[0])
        signature = output_signature((x0, y0, w0))
        feed = epoch_generator(seq, workers, multiprocessing, 10)

        def dataset_fn(context: Any) -> Any:
            local = max(1, context.num_replicas_in_sync // context.num_input_pipelines)

            def batches() -> Any:
                # Repeating, the feed crosses epochs itself (the enqueuer runs
                # on_epoch_end), so one iterator serves a whole fit: building a
                # distributed iterator costs ~80 ms per epoch.
                yield from feed()
                while repeat:
                    yield from feed()

            def per_replica_slices() -> Any:
                for batch in batches():
                    x, y, w = _xyw(batch)
                    # Contiguous slices, sizes differing by at most one (0 rows allowed).
                    edges = np.linspace(0, len(w), local + 1).round().astype(int)
                    for a, b in itertools.pairwise(edges):
                        yield tf.nest.map_structure(lambda v, a=a, b=b: v[a:b], (x, y, w))

            dataset = tf.data.Dataset.from_generator(per_replica_slices, output_signature=signature)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF  # each worker reads its own shard
            )
            return dataset.with_options(options)

        return strategy.distribute_datasets_from_function(dataset_fn)

    # -- public API ----------------------------------------------------------------------

    def fit(
        self,
        seq: Any,
        gpus: Any = None,
        epochs: int = 1,
        workers: int = 1,
        validation_data: Any = None,
        callbacks: list | None = None,
        initial_epoch: int = 0,
        devices: Seq[str] | None = None,
        verbose: int | str = "auto",
        use_multiprocessing: bool = False,
    ) -> Any:
        """Trains the template model on ``seq`` for ``epochs`` epochs.

        Args:
            seq: a `Pipeline` or `Sequence` of ``(x, y)`` or ``(x, y, sample_weight)``.
            gpus: as in `multi_gpu_model` (``None``: every GPU, else the CPU).
            epochs: index of the last epoch (as in Keras).
            workers: enqueuer workers feeding the devices.
            validation_data: a `Pipeline`/`Sequence` evaluated after each epoch.
            callbacks: Keras callbacks.
            initial_epoch: epoch to start at (the pipeline's plan follows it).
            devices: explicit device names, e.g. ``["/cpu:0", "/cpu:1"]``.
            verbose: 0, 1, 2 or ``"auto"``, as in Keras.
            use_multiprocessing: enqueuer worker processes instead of threads.

        Returns:
            The Keras ``History``.
        """
        import keras
        import tensorflow as tf

        strategy, num_workers, index = self._strategy(gpus, devices)
        seq = _as_pipeline(seq)
        if num_workers > 1:
            seq = seq.shard(num_workers, index)
        replica, optimizer, loss_obj = self._replicate(strategy)
        self._setup = (strategy, replica, loss_obj)
        variables = replica.trainable_variables
        per_sample = self._per_sample

        @tf.function
        def train_step(iterator: Any) -> Any:
            def step(x: Any, y: Any, w: Any) -> Any:
                context = tf.distribute.get_replica_context()
                total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(w))
                with tf.GradientTape() as tape:
                    pred = replica(x, training=True)
                    weighted = tf.reduce_sum(per_sample(loss_obj, y, pred) * w)
                    loss = tf.math.divide_no_nan(weighted, total)
                    if replica.losses:
                        loss += tf.add_n(replica.losses) / strategy.num_replicas_in_sync
                grads = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(grads, variables, strict=True))
                return weighted, tf.reduce_sum(w)

            weighted, weight = strategy.run(step, args=next(iterator))
            sum_op = tf.distribute.ReduceOp.SUM
            return strategy.reduce(sum_op, weighted, None), strategy.reduce(sum_op, weight, None)

        steps = len(seq)
        verbose = 1 if verbose == "auto" else verbose
        callback_list = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            model=self.model,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )
        seq.set_epoch(initial_epoch)
        dataset = self._distributed(strategy, seq, workers, use_multiprocessing, repeat=True)
        iterator = iter(dataset)
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            # Totals stay tensors: converting every step would wait for each step to
            # finish (Keras' progress bar converts the logs it shows).
            total_loss = total_weight = tf.constant(0.0)
            for step in range(steps):
                callback_list.on_train_batch_begin(step)
                weighted, weight = train_step(iterator)
                total_loss, total_weight = total_loss + weighted, total_weight + weight
                logs = {"loss": tf.math.divide_no_nan(total_loss, total_weight)}
                callback_list.on_train_batch_end(step, logs)
            self.model.set_weights(replica.get_weights())
            epoch_logs = {"loss": float(logs["loss"])}
            if validation_data is not None:
                epoch_logs["val_loss"] = self.evaluate(validation_data, workers=workers)
            callback_list.on_epoch_end(epoch, epoch_logs)
            if getattr(self.model, "stop_training", False):
                break
        callback_list.on_train_end(epoch_logs)
        del iterator  # closes the feed and its enqueuer
        return self.model.history

    def _run_forward(self, seq: Any, workers: int, fn: Any) -> list[Any]:
        import tensorflow as tf

        if self._setup is None:
            strategy, _, _ = self._strategy(None, None)
            replica, _, loss_obj = self._replicate(strategy)
            self._setup = (strategy, replica, loss_obj)
        strategy, replica, loss_obj = self._setup
        replica.set_weights(self.model.get_weights())
        seq = _as_pipeline(seq)
        dataset = self._distributed(strategy, seq, workers, False, repeat=False)

        @tf.function
        def forward(iterator: Any) -> Any:
            return strategy.run(lambda x, y, w: fn(replica, loss_obj, x, y, w), args=next(iterator))

        iterator = iter(dataset)
        return [forward(iterator) for _ in range(len(seq))]

    def evaluate(self, seq: Any, workers: int = 1) -> float:
        """Weighted mean loss of the template model over one epoch of ``seq``."""
        import tensorflow as tf

        per_sample = self._per_sample

        def fn(replica: Any, loss_obj: Any, x: Any, y: Any, w: Any) -> Any:
            pred = replica(x, training=False)
            return tf.reduce_sum(per_sample(loss_obj, y, pred) * w), tf.reduce_sum(w)

        results = self._run_forward(seq, workers, fn)
        strategy = self._setup[0]
        total = sum(float(strategy.reduce("SUM", r[0], None)) for r in results)
        weight = sum(float(strategy.reduce("SUM", r[1], None)) for r in results)
        return total / max(weight, 1e-12)

    def predict(self, seq: Any, workers: int = 1) -> np.ndarray:
        """Model outputs for every sample of one epoch of ``seq``, in order."""
        results = self._run_forward(seq, workers, lambda replica, _l, x, _y, _w: replica(x))
        strategy = self._setup[0]
        parts = [np.asarray(p) for r in results for p in strategy.experimental_local_results(r)]
        return np.concatenate(parts)
