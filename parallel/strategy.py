"""Which ``tf.distribute`` strategy a trainer runs under (TensorFlow imported lazily)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence as Seq
from typing import Any

from .devices import resolve_devices

_COLLECTIVE_TIMEOUT_S = 120
_MULTI_WORKER_STRATEGY: Any = None


def cluster() -> tuple[int, int]:
    """Returns (number of workers, this worker's index) from ``TF_CONFIG``."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    task = config.get("task", {})
    return max(len(workers), 1), int(task.get("index", 0)) if task.get("type") == "worker" else 0


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

    Example:
        >>> strategy = multi_worker_strategy()   # doctest: +SKIP
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


def make_strategy(
    gpus: Any, devices: Seq[str] | None, cpu_merge: bool
) -> tuple[Any, list[str], int, int]:
    """Builds the strategy for a run.

    Args:
        gpus: as in `multi_gpu_model`.
        devices: explicit device names (overrides ``gpus``).
        cpu_merge: reduce through the CPU (else NCCL on GPUs).

    Returns:
        ``(strategy, device names, number of workers, this worker's index)``; the
        device list is empty for a multi-worker run (each worker uses its own).
    """
    import tensorflow as tf

    num_workers, index = cluster()
    if num_workers > 1:
        return multi_worker_strategy(), [], num_workers, index
    names = list(devices) if devices else resolve_devices(gpus)
    if cpu_merge:
        ops = tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0")
    elif all("gpu" in d.lower() for d in names):
        ops = tf.distribute.NcclAllReduce()
    else:
        # NCCL has no CPU kernel (it builds, then fails at the first step), and
        # HierarchicalCopyAllReduce was measured wrong on logical CPU devices (weights
        # 0.15 off a one-device run): reduce on the first device instead.
        ops = tf.distribute.ReductionToOneDevice(reduce_to_device=names[0])
    return tf.distribute.MirroredStrategy(names, cross_device_ops=ops), names, 1, 0
