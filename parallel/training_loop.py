"""The epochs of one `MultiGPUTrainer.fit` call: steps, callbacks, running totals,
backups, validation and the input-wait measure.

The loop is our own (``strategy.run``), driving Keras callbacks, History and progress
bar through the public callback API (see NOTE [ Exactly-once loss across replicas ] in
``parallel/trainer.py`` for why not ``model.fit``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from .backup import Backup, Saved
from .replicas import Replicas, make_train_step, pull_template, push_learning_rate
from .resume import Resume

INPUT_WAIT_WARNING = 0.2


class InputBoundWarning:
    """Warns once (per trainer) when the loop waited for input over 20 % of an epoch."""

    def __init__(self) -> None:
        self.warned = False

    def check(self, input_wait: float, epoch: int, workers: Any) -> None:
        """Warns if ``input_wait`` (a fraction of the epoch) is over the threshold."""
        if input_wait > INPUT_WAIT_WARNING and not self.warned:
            self.warned = True
            warnings.warn(
                f"The input pipeline is the bottleneck: the training loop waited for "
                f"batches {input_wait:.0%} of epoch {epoch}. Raise workers= (now {workers}) "
                f"or use_multiprocessing=True; print_summary(seq) shows the slow stage",
                stacklevel=5,
            )


@dataclass
class TrainingLoop:
    """Trains the replicas epoch after epoch and reports to the template's callbacks.

    Args:
        template: the user's model; callbacks see it, and it receives the replicas'
            weights and optimizer state at every epoch end.
        replicas: what the strategy trains.
        iterator: the distributed iterator of the feed's per-replica slices.
        callbacks: a ``keras.callbacks.CallbackList`` (with History).
        pipeline: this worker's pipeline (its shard, with several workers): its plan
            says how many steps an epoch has and where a step leaves the epoch's order.
        validate: ``epoch -> {name: value}`` of validation logs (empty when not due).
        workers: enqueuer workers, named by the input-wait warning.
        topology: ``{"workers", "replicas", "batch_size"}``, saved in backups.
        backup: where to save the job every few steps, or ``None``.
        resume: the backup this run continues from, or ``None``.
        input_bound: the trainer's once-only input-wait warning.
    """

    template: Any
    replicas: Replicas
    iterator: Any
    callbacks: Any
    pipeline: Pipeline
    validate: Callable[[int], dict[str, float]]
    workers: Any
    topology: dict[str, int] = field(default_factory=dict)
    backup: Backup | None = None
    resume: Resume | None = None
    input_bound: InputBoundWarning = field(default_factory=InputBoundWarning)

    def run(self, initial_epoch: int, epochs: int) -> Any:
        """Trains epochs ``initial_epoch .. epochs - 1``; returns the template's History."""
        train_step = make_train_step(self.replicas, self.iterator.element_spec)
        epoch_logs: dict[str, Any] = {}
        self._steps_done = 0
        self.callbacks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.callbacks.on_epoch_begin(epoch)
            push_learning_rate(self.template, self.replicas)
            epoch_logs = self._train_epoch(epoch, train_step)
            epoch_logs.update({f"val_{k}": v for k, v in self.validate(epoch).items()})
            self.callbacks.on_epoch_end(epoch, epoch_logs)
            if getattr(self.template, "stop_training", False):
                break
        self.callbacks.on_train_end(epoch_logs)
        return self.template.history

    def _start(self, epoch: int) -> tuple[int, Any, Any, int]:
        # Where ``epoch``'s steps begin in its order, and its running loss totals, count
        # of real samples and steps: the backup's in the resumed epoch, zero otherwise.
        import tensorflow as tf

        r = self.replicas
        if self.resume is not None and epoch == self.resume.epoch:
            saved = self.resume.saved
            r.metrics.set_totals(saved.metrics, chief=r.worker == 0)
            totals = tf.constant(saved.loss_totals, tf.float32)
            return saved.position, totals, tf.constant(saved.count), saved.steps
        r.metrics.reset()
        return 0, tf.zeros(1 + len(r.loss.names)), tf.constant(0.0), 0

    def _train_epoch(self, epoch: int, train_step: Any) -> dict[str, Any]:

        r = self.replicas
        plan = self.pipeline.plan
        start, total_loss, total_count, epoch_steps = self._start(epoch)
        steps = plan.num_steps(start)
        # A resumed epoch's steps are numbered as the last of a whole epoch's, so Keras'
        # progress bar and step callbacks end where they would have.
        first_step = plan.num_batches - steps
        logs: dict[str, Any] = {}
        waited = 0.0
        started = time.perf_counter()
        for done in range(steps):
            step = first_step + done
            self.callbacks.on_train_batch_begin(step)
            fetch = time.perf_counter()
            batch = next(self.iterator)
            waited += time.perf_counter() - fetch
            (weighted, count), results = train_step(batch)
            # Totals stay tensors: converting every step would wait for each step to
            # finish (Keras' progress bar converts the logs it shows).
            total_loss, total_count = total_loss + weighted, total_count + count
            epoch_steps += 1
            logs = {**r.loss.logs(total_loss, total_count, epoch_steps), **results}
            self._steps_done += 1
            if self.backup is not None and self.backup.due(self._steps_done):
                position = plan.position_after(done + 1, start)
                self._save(epoch, position, (total_loss, total_count, epoch_steps))
            self.callbacks.on_train_batch_end(step, logs)
        input_wait = waited / max(time.perf_counter() - started, 1e-9)
        pull_template(self.template, r)
        if not logs:  # resumed after the epoch's last step
            logs = {**r.loss.logs(total_loss, total_count, epoch_steps), **r.metrics.results()}
        epoch_logs = {name: float(value) for name, value in logs.items()}
        epoch_logs["input_wait"] = input_wait
        self.input_bound.check(input_wait, epoch, self.workers)
        return epoch_logs

    def _save(self, epoch: int, position: int, running: tuple[Any, Any, int]) -> None:
        r = self.replicas
        loss, count, steps = running
        state = Saved(
            epoch=epoch,
            position=position,
            block=self.pipeline.order_block(epoch),
            topology=self.topology,
            loss_totals=[float(v) for v in np.asarray(loss)],
            steps=steps,
            count=float(count),
            weights=r.model.get_weights(),
            optimizer=[np.asarray(v.numpy()) for v in r.optimizer.variables],
            metrics=r.metrics.totals(),
        )
        self.backup.save(state)
