"""`MultiGPUTrainer`: trains a Keras model on a pipeline with ``tf.distribute``.

NOTE [ Exactly-once loss across replicas ]
Each global batch is split into contiguous per-replica slices (uneven sizes allowed,
down to 0 rows). Every replica computes ``sum(w * loss) / N`` where ``N`` is the number
of real samples of the *whole* global batch (all replicas, all workers; padding rows of
sharded pipelines excluded), obtained by an all-reduce inside the step; the gradients
are then summed across replicas. This is Keras' ``"sum_over_batch_size"`` reduction, so
each real sample contributes its loss exactly once per epoch with the same weight as in
``model.fit`` on one device (class and sample weights included), whatever the replica
count, and padding rows (weight 0) contribute nothing. Metrics follow the same rule
(NOTE [ Exactly-once metrics across replicas ] in ``parallel/metrics.py``). Workers of
a multi-worker run read their own shard, and shards have equal step counts, so no
worker waits for a step another does not take.

The training loop is our own (``strategy.run``, in ``parallel/training_loop.py``),
driving Keras callbacks, History and progress bar through the public callback API:
Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), and a one-shot generator loses batches under a strategy. The
template model is the callbacks' model: its weights and optimizer state are brought up
to date at every epoch end, and learning rates that callbacks set on it are pushed to
the replicas at every epoch start.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from .agreement import check_agreement, chief_value
from .autotune import Workers
from .backup import Backup, model_identity
from .evaluation import evaluate_logs
from .feed import Feed, as_xyw
from .fit_options import (
    check_callbacks,
    check_class_weight,
    refuse_keras_arguments,
    refuse_other_backends,
    should_validate,
)
from .metrics import in_keras_order
from .replicas import Replicas, distributed_iterator, replicate
from .resume import Resume
from .strategy import make_strategy
from .tensorboard_metrics import EpochInputMetrics, input_metrics_callback, tensorboard_log_dir
from .training_loop import InputBoundWarning, TrainingLoop

logger = logging.getLogger(__name__)


def _as_pipeline(seq: Any) -> Pipeline:
    return seq if isinstance(seq, Pipeline) else Pipeline(seq)


class MultiGPUTrainer:
    """Trains, evaluates and predicts with a Keras model on one or many devices.

    One machine: ``tf.distribute.MirroredStrategy`` over the chosen devices
    (``cpu_merge=True`` reduces through the CPU; ``False`` uses NCCL all-reduce on GPUs
    and a reduction on the first device elsewhere). Several machines (``TF_CONFIG`` with
    several workers): ``MultiWorkerMirroredStrategy``, each worker reading
    ``seq.shard(num_workers, worker_index)``. The template model is cloned under the
    strategy; its weights and optimizer state are updated after every epoch, so it is
    what you save. Compiled metrics, mixed precision (``mixed_float16`` with Keras' loss
    scaling, ``mixed_bfloat16``), class weights and Keras callbacks work as in
    ``model.fit``.

    Args:
        model: a compiled Keras model (the template).
        cpu_merge: reduce gradients through the CPU.
        cpu_relocation: the seed's argument, without effect here: the replicas are
            always clones made in the strategy's scope, their variables mirrored on
            every device, wherever the template's were created (what relocation was
            for). ``True`` warns so, once.

    Raises:
        ValueError: if the model is not compiled.
        RuntimeError: if Keras runs on another backend than TensorFlow.

    Example:
        >>> trainer = MultiGPUTrainer(model)                     # doctest: +SKIP
        >>> history = trainer.fit(seq, gpus=8, epochs=10)         # doctest: +SKIP
        >>> loss, accuracy = trainer.evaluate(val)                # doctest: +SKIP
    """

    def __init__(self, model: Any, cpu_merge: bool = True, cpu_relocation: bool = False):
        refuse_other_backends("MultiGPUTrainer")
        if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
            raise ValueError("MultiGPUTrainer needs a compiled model: call model.compile()")
        self.model = model
        self.cpu_merge = cpu_merge
        self.cpu_relocation = cpu_relocation
        if cpu_relocation:
            warnings.warn(
                "MultiGPUTrainer(cpu_relocation=True) has no effect: the replicas are "
                "clones made in the tf.distribute strategy's scope, with their variables "
                "mirrored on every device, wherever the template's weights were created",
                stacklevel=2,
            )
        self.devices: list[str] = []
        self._replicas: Replicas | None = None
        self._input_bound = InputBoundWarning()

    # -- replicas ------------------------------------------------------------------------

    def _strategy(self, gpus: Any, devices: Seq[str] | None) -> tuple[Any, int, int]:
        strategy, self.devices, num_workers, worker = make_strategy(gpus, devices, self.cpu_merge)
        return strategy, num_workers, worker

    def _pipeline_for(self, seq: Any, replicas: Replicas) -> Pipeline:
        seq = _as_pipeline(seq)
        if replicas.num_workers > 1 and not seq.sharded:
            seq = seq.shard(replicas.num_workers, replicas.worker)
        return seq

    # -- public API ----------------------------------------------------------------------

    def fit(
        self,
        seq: Any,
        gpus: Any = None,
        epochs: int = 1,
        workers: Workers = 1,
        validation_data: Any = None,
        callbacks: list | None = None,
        initial_epoch: int = 0,
        devices: Seq[str] | None = None,
        verbose: int | str = "auto",
        use_multiprocessing: bool = False,
        class_weight: Mapping[int, float] | None = None,
        validation_freq: int | Seq[int] = 1,
        max_queue_size: int = 10,
        backup_dir: str | os.PathLike | None = None,
        backup_every: int = 100,
        **keras_arguments: Any,
    ) -> Any:
        """Trains the template model on ``seq`` for ``epochs`` epochs.

        Every sample of every epoch is trained on exactly once (see NOTE [ Exactly-once
        loss across replicas ]); the logs hold ``loss``, the compiled metrics,
        ``val_``-prefixed validation results and ``input_wait``, the fraction of the
        epoch the loop waited for the input pipeline (a warning is issued once when it
        exceeds 20 %).

        Args:
            seq: a `Pipeline` or `Sequence` of ``(x, y)`` or ``(x, y, sample_weight)``.
            gpus: as in `multi_gpu_model` (``None``: every GPU, else the CPU).
            epochs: index of the last epoch (as in Keras).
            workers: enqueuer workers feeding the devices, or ``"auto"`` (with
                ``use_multiprocessing=True``; `AutoWorkers` carries budgets), as in
                `OrderedEnqueuer.start`.
            validation_data: a `Pipeline`/`Sequence` evaluated after epochs.
            callbacks: Keras callbacks (``ModelCheckpoint`` saves the template). With a
                ``TensorBoard`` callback the input pipeline's metrics are written beside
                its logs (``parallel/tensorboard_metrics.py``).
            initial_epoch: epoch to start at (the pipeline's plan follows it).
            devices: explicit device names, e.g. ``["/cpu:0", "/cpu:1"]``.
            verbose: 0, 1, 2 or ``"auto"``, as in Keras.
            use_multiprocessing: enqueuer worker processes instead of threads.
            class_weight: ``{class index: weight}``, multiplied into the sample weights
                as Keras does.
            validation_freq: validate every ``n`` epochs, or after the listed epochs.
            max_queue_size: batches the enqueuer computes ahead.
            backup_dir: save the job every ``backup_every`` steps here and resume from
                it when ``fit`` is called again after a crash (see NOTE [ Exactly-once
                resume ] in ``parallel/backup.py``); deleted when ``fit`` returns.
            backup_every: steps between backups.
            **keras_arguments: ``steps_per_epoch``, ``validation_steps``,
                ``batch_size``, ``shuffle``, ``sample_weight``, ``validation_split``
                are refused (they would break exactly-once), each with what to do.

        Returns:
            The Keras ``History`` (epochs keep their numbers after a resume).

        Raises:
            ValueError: for a refused Keras argument, a ``class_weight`` key that is not
                a class, a metric that cannot be aggregated across replicas, an
                unwritable ``backup_dir`` or a backup of another job.
        """
        import keras

        whole = _as_pipeline(seq)
        validation_data = None if validation_data is None else _as_pipeline(validation_data)
        refuse_keras_arguments(
            len(whole), None if validation_data is None else len(validation_data), **keras_arguments
        )
        check_callbacks(callbacks)
        should_validate(0, validation_freq)
        class_weight = check_class_weight(class_weight, self.model)
        strategy, num_workers, worker = self._strategy(gpus, devices)
        topology = {
            "workers": num_workers,
            "replicas": strategy.num_replicas_in_sync // num_workers,
            "batch_size": whole.batch_size or 1,
        }
        whole, backup, resume = self._agree_and_resume(
            whole, strategy, num_workers, worker, backup_dir, backup_every
        )
        seq = whole.shard(num_workers, worker) if num_workers > 1 else whole
        if resume is None:
            seq.set_epoch(initial_epoch)
        else:  # NOTE [ Exactly-once resume ] in parallel/backup.py
            initial_epoch = resume.epoch
            resume.position_pipeline(seq)
            resume.restore_weights(self.model)
            line = resume.describe(whole, topology)
            logger.info(line)
            if verbose and worker == 0:
                print(line)
        log_dir = tensorboard_log_dir(callbacks)
        feed = Feed(
            seq,
            topology["replicas"],
            workers,
            use_multiprocessing,
            max_queue_size,
            repeat=True,
            class_weight=class_weight,
            monitor=log_dir is not None,
        )
        if log_dir is not None:
            metrics = EpochInputMetrics(feed.batches, log_dir)
            callbacks = [*(callbacks or []), input_metrics_callback(metrics)]
        try:
            r = replicate(self.model, strategy, num_workers, worker, feed.first())
            self._replicas = r
            if resume is not None:
                resume.restore_optimizer(self.model, r)
            verbose = 1 if verbose == "auto" else verbose

            def validate(epoch: int) -> dict[str, float]:
                if validation_data is None or not should_validate(epoch, validation_freq):
                    return {}
                return self._evaluate_logs(validation_data, workers, use_multiprocessing)

            loop = TrainingLoop(
                template=self.model,
                replicas=r,
                iterator=distributed_iterator(strategy, feed),
                callbacks=keras.callbacks.CallbackList(
                    callbacks,
                    add_history=True,
                    add_progbar=verbose != 0,
                    model=self.model,
                    verbose=verbose,
                    epochs=epochs,
                    steps=seq.plan.num_batches,
                ),
                pipeline=seq,
                validate=validate,
                workers=workers,
                topology=topology,
                backup=backup,
                resume=resume,
                input_bound=self._input_bound,
            )
            history = loop.run(initial_epoch, epochs)
            del loop
        finally:
            feed.close()
        if backup is not None:
            backup.delete()
        return history

    def _agree_and_resume(
        self,
        whole: Pipeline,
        strategy: Any,
        num_workers: int,
        worker: int,
        backup_dir: str | os.PathLike | None,
        backup_every: int,
    ) -> tuple[Pipeline, Backup | None, Resume | None]:
        """The pipeline every worker agrees on, the backup, and what to resume from.

        A pipeline that drew its seed (``seed=None``) takes the backup's, so a restart
        resumes the same run, or else, with several workers, the chief's: each worker
        drew its own, and shards cut from different orders would repeat and skip
        samples. The workers then check that their pipelines, and the position they
        resume from, agree (`parallel.agreement`).
        """
        backup = None
        if backup_dir is not None:
            identity = {"model": model_identity(self.model), "pipeline": whole.identity()}
            backup = Backup(backup_dir, backup_every, identity, chief=worker == 0)
            saved_seed = (backup.saved_identity() or {}).get("pipeline", {}).get("seed")
            if whole.seed_was_drawn and saved_seed is not None:
                whole = whole.with_seed(saved_seed)
        if whole.seed_was_drawn:
            whole = whole.with_seed(chief_value(strategy, num_workers, whole.seed))
        check_agreement(strategy, num_workers, whole.identity(), "the pipeline")
        if backup is None:
            return whole, None, None
        backup.identity["pipeline"] = whole.identity()
        saved = backup.load()
        if saved is None:
            return whole, backup, None
        position = {"epoch": saved.epoch, "position": saved.position}
        check_agreement(strategy, num_workers, position, "where to resume")
        return whole, backup, Resume(saved)

    def _ensure_replicas(self, seq: Pipeline, gpus: Any, devices: Seq[str] | None) -> Replicas:
        """The replicas of the last `fit` unless devices are named, else new ones (built
        with one extra read of batch 0 of ``seq``)."""
        if self._replicas is None or gpus is not None or devices:
            strategy, num_workers, worker = self._strategy(gpus, devices)
            x, y, _ = as_xyw(seq[0])
            self._replicas = replicate(self.model, strategy, num_workers, worker, (x, y))
        return self._replicas

    def _evaluate_logs(
        self,
        seq: Any,
        workers: Workers,
        use_multiprocessing: bool,
        gpus: Any = None,
        devices: Seq[str] | None = None,
    ) -> dict[str, float]:
        r = self._ensure_replicas(_as_pipeline(seq), gpus, devices)
        r.model.set_weights(self.model.get_weights())
        return evaluate_logs(r, self._pipeline_for(seq, r), workers, use_multiprocessing)

    def evaluate(
        self,
        seq: Any,
        workers: Workers = 1,
        use_multiprocessing: bool = False,
        return_dict: bool = False,
        gpus: Any = None,
        devices: Seq[str] | None = None,
    ) -> Any:
        """Loss and compiled metrics of the template model over one epoch of ``seq``.

        Every real sample counts once, with its sample weight (padding rows of sharded
        pipelines excluded), summed across replicas and workers.

        Args:
            seq: a `Pipeline` or `Sequence` of ``(x, y)`` or ``(x, y, sample_weight)``.
            workers: enqueuer workers.
            use_multiprocessing: enqueuer worker processes instead of threads.
            return_dict: return ``{name: value}`` instead of Keras' scalar or list.
            gpus: as in `fit`; ``None`` with ``devices=None`` reuses the last `fit`'s
                devices (or the default ones).
            devices: explicit device names.

        Returns:
            What Keras' ``evaluate`` returns: the loss alone when there are no compiled
            metrics, else ``[loss, *metrics]``; a dict with ``return_dict=True``.
        """
        logs = self._evaluate_logs(seq, workers, use_multiprocessing, gpus, devices)
        r = self._replicas
        return logs if return_dict else in_keras_order(logs, [*r.loss.names, *r.metrics.names])

    def predict(
        self, seq: Any, workers: Workers = 1, gpus: Any = None, devices: Seq[str] | None = None
    ) -> np.ndarray:
        """Model outputs for every sample of one epoch of ``seq``, in order.

        Args:
            seq: a `Pipeline` or `Sequence`; targets, if any, are ignored.
            workers: enqueuer workers.
            gpus: as in `evaluate`.
            devices: as in `evaluate`.

        Returns:
            The outputs, concatenated over batches.
        """
        import tensorflow as tf

        seq = _as_pipeline(seq)
        r = self._ensure_replicas(seq, gpus, devices)
        r.model.set_weights(self.model.get_weights())
        feed = Feed(seq, r.local_replicas, workers)
        try:
            iterator = distributed_iterator(r.strategy, feed)

            @tf.function
            def forward(iterator: Any) -> Any:
                return r.strategy.run(lambda x, *_: r.model(x, training=False), args=next(iterator))

            results = [forward(iterator) for _ in range(len(seq))]
            del iterator
        finally:
            feed.close()
        parts = [
            np.asarray(p) for out in results for p in r.strategy.experimental_local_results(out)
        ]
        return np.concatenate(parts)
