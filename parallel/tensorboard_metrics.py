"""The input pipeline's metrics in TensorBoard, beside a Keras ``TensorBoard`` callback's.

When ``MultiGPUTrainer.fit`` or ``model.fit(seq.as_keras())`` runs with a
``keras.callbacks.TensorBoard(log_dir)``, the enqueuer feeding it measures its input
(`InputMonitor`, stages timed) and each epoch's `InputMetrics` are written as scalars
to ``<log_dir>/input``: ``input/wait_fraction``, ``input/batches_per_second``,
``input/stage_ms/<stage>`` (named as `print_summary` names stages),
``input/queue_depth``, ``input/workers`` and ``input/segment_bytes``, at step = epoch.
TensorBoard shows them as the run ``input`` next to ``train`` and ``validation``.
TensorFlow writes the event file (Keras' callback needs it too), imported when used.

NOTE [ Finding model.fit's TensorBoard callback ]
Keras gives a ``PyDataset`` no handle on the callbacks of the ``fit`` that reads it. But
``fit`` calls the dataset's ``on_epoch_begin`` from its own loop, in its own thread, with
its `CallbackList` in a local variable named ``callbacks`` (so in Keras 3's trainers for
every backend): the dataset looks for that frame up its call stack, once per epoch.
Found nothing (another caller, another Keras), it writes nothing.

Before Python 3.13 (PEP 667), ``frame.f_locals`` is a snapshot dict kept on the frame
until the next read: it held the previous epoch's tf.data iterator for a whole epoch,
and the next epoch's read dropped it, running its finalizer in our call (1.1 s, at the
third epoch of 2 runs in 3 of ``benchmarks/adapters.py``'s ``fit(as_keras)``). So the
snapshot is emptied once read: it then holds nothing that the frame does not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

# Frames looked through for fit's: its loop is a few calls above the dataset.
_MAX_FRAMES = 40
# A frame's f_locals is a snapshot dict before Python 3.13, a write-through view after.
_SNAPSHOT_LOCALS = sys.version_info < (3, 13)


def tensorboard_log_dir(callbacks: Iterable[Any] | None) -> str | None:
    """The ``log_dir`` of the first ``keras.callbacks.TensorBoard`` in ``callbacks``."""
    import keras

    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.TensorBoard):
            return str(callback.log_dir)
    return None


def fit_tensorboard_log_dir() -> str | None:
    """The TensorBoard ``log_dir`` of the Keras ``fit`` calling us, if any (NOTE
    [ Finding model.fit's TensorBoard callback ])."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        if frame.f_code.co_name == "fit":
            snapshot = frame.f_locals
            callbacks = snapshot.get("callbacks")
            if _SNAPSHOT_LOCALS:
                snapshot.clear()
            if isinstance(callbacks, keras.callbacks.CallbackList):
                return tensorboard_log_dir(callbacks.callbacks)
        frame = frame.f_back
    return None


class EpochInputMetrics:
    """Writes each epoch's `InputMetrics` of an `EnqueuerFeed` to ``<log_dir>/input``.

    Call `begin` when an epoch begins and `end` when it ends; the metrics cover the
    time between (or, when the enqueuer started within the epoch, since it started).

    Args:
        feed: the `EnqueuerFeed` whose enqueuer is measured (``monitor=True``).
        log_dir: the TensorBoard callback's log directory.
    """

    def __init__(self, feed: Any, log_dir: str) -> None:
        self.feed = feed
        self.log_dir = log_dir
        self._start: tuple[Any, Any] | None = None  # (monitor, reading)
        self._writer: Any = None

    def _monitor(self) -> Any:
        enqueuer = self.feed.enqueuer
        return None if enqueuer is None else enqueuer.monitor

    def begin(self) -> None:
        """Marks the start of an epoch."""
        monitor = self._monitor()
        self._start = None if monitor is None else (monitor, monitor.read())

    def end(self, epoch: int) -> None:
        """Writes the epoch's metrics at step ``epoch``."""
        monitor = self._monitor()
        if monitor is None:
            return
        same = self._start is not None and self._start[0] is monitor
        start = self._start[1] if same else monitor.origin
        self.write(monitor.metrics_since(start).scalars(), epoch)

    def write(self, scalars: dict[str, float], step: int) -> None:
        """Writes ``{tag: value}`` scalars at ``step`` and flushes the event file."""
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "input"))
        with self._writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value, step=step)
        self._writer.flush()

    def close(self) -> None:
        """Closes the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def input_metrics_callback(metrics: EpochInputMetrics) -> Any:
    """A Keras callback driving ``metrics`` (for `MultiGPUTrainer.fit`'s own loop)."""
    import keras

    class InputMetricsCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            metrics.begin()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            metrics.end(epoch)

        def on_train_end(self, logs: Any = None) -> None:
            metrics.close()

    return InputMetricsCallback()
