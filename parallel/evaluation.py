"""One evaluation pass of the replicas over a pipeline: the loss and compiled metrics,
every real sample counted once (shared by `MultiGPUTrainer.evaluate` and validation)."""

from __future__ import annotations

from ..pipeline import Pipeline
from .autotune import Workers
from .feed import Feed
from .replicas import Replicas, distributed_iterator, eval_step_of


def evaluate_logs(
    replicas: Replicas, seq: Pipeline, workers: Workers, use_multiprocessing: bool
) -> dict[str, float]:
    """Evaluates the replicas' current weights over one epoch of ``seq``.

    Args:
        replicas: the replicas, with the template's weights already set.
        seq: the pipeline, already sharded for this worker when there are several.
        workers: enqueuer workers.
        use_multiprocessing: enqueuer worker processes instead of threads.

    Returns:
        ``{"loss": ..., <metric name>: ...}``, summed across replicas and workers.
    """
    import tensorflow as tf

    feed = Feed(seq, replicas.local_replicas, workers, use_multiprocessing)
    try:
        iterator = distributed_iterator(replicas.strategy, feed)
        eval_step = eval_step_of(replicas)
        replicas.metrics.reset()
        total_loss, total_count = tf.zeros(1 + len(replicas.loss.names)), tf.constant(0.0)
        for _ in range(len(seq)):
            weighted, count = eval_step(iterator)
            total_loss, total_count = total_loss + weighted, total_count + count
        del iterator
    finally:
        feed.close()
    logs = {**replicas.loss.logs(total_loss, total_count, len(seq)), **replicas.metrics.results()}
    return {name: float(value) for name, value in logs.items()}
