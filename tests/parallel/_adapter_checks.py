"""Adapter checks with real TensorFlow, run in a fresh process.

``python -m tests.parallel._adapter_checks`` prints one JSON object of measured values;
tests/parallel/test_adapters.py asserts on them (and on what is left after this process
exits).
"""

import gc
import json
import os
import sys
import warnings

import numpy as np

from seqpipe.pipeline import Sequence

NUM_BATCHES = 6


class Marked(Sequence):
    """Batch ``i`` holds ``100 * epoch + i``; ``epoch`` advances in ``on_epoch_end``, so a
    worker that missed an ``on_epoch_end`` returns a wrong value."""

    def __init__(self):
        self.epoch = 0
        self.epoch_ends = 0

    def __len__(self):
        return NUM_BATCHES

    def __getitem__(self, index):
        value = 100 * self.epoch + index
        return np.full((2, 3), value, dtype="float32"), np.zeros((2, 1), dtype="float32")

    def on_epoch_end(self):
        self.epoch += 1
        self.epoch_ends += 1


def _recording_fit(data, epochs, shuffle):
    """Fits a model whose step returns the batch's mark; returns the marks per epoch."""
    import keras

    class Mark(keras.Model):
        def train_step(self, batch):
            return {"mark": batch[0][0, 0]}

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([])

        def on_train_batch_end(self, batch, logs=None):
            seen[-1].append(round(float(logs["mark"])))

    model = Mark()
    model.compile()
    model.fit(data, epochs=epochs, verbose=0, shuffle=shuffle, callbacks=[Record()])
    return seen


def _pids(enqueuer):
    return list(enqueuer._executor.pool.worker_pids_started)


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def _segments():
    from seqpipe.parallel.shm import leftover_segments

    return leftover_segments(f"seqpipe_{os.getpid()}_")


def keras_checks(out):
    seq = Marked()
    dataset = seq.as_keras(workers=2, use_multiprocessing=True)
    out["keras_workers_seen_by_keras"] = [dataset.workers, dataset.use_multiprocessing]
    out["keras_fit"] = _recording_fit(dataset, 3, shuffle=False)
    out["keras_epoch_ends"] = seq.epoch_ends
    pids = _pids(dataset.feed.enqueuer)
    out["keras_pids_started"] = len(pids)
    out["keras_second_fit"] = _recording_fit(dataset, 1, shuffle=False)
    out["keras_pids_after_second_fit"] = len(_pids(dataset.feed.enqueuer))
    dataset.close()
    out["keras_alive_after_close"] = _alive(pids)
    out["keras_segments_after_close"] = _segments()

    seq = Marked()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with seq.as_keras(workers=2, use_multiprocessing=True) as dataset:
            out["keras_shuffled_fit"] = _recording_fit(dataset, 3, shuffle=True)
    out["keras_shuffled_warnings"] = [str(w.message) for w in caught if "shuffle" in str(w.message)]
    out["keras_shuffled_epoch_ends"] = seq.epoch_ends

    # Read by hand, then dropped: garbage collection stops the workers.
    dataset = Marked().as_keras(workers=2, use_multiprocessing=True)
    dataset.on_epoch_begin()
    out["manual_epoch"] = [int(dataset[i][0][0, 0]) for i in range(NUM_BATCHES)]
    dataset.on_epoch_end()
    pids = _pids(dataset.feed.enqueuer)
    del dataset
    gc.collect()
    out["manual_alive_after_gc"] = _alive(pids)
    out["manual_segments_after_gc"] = _segments()


def tf_checks(out):
    seq = Marked()
    dataset = seq.as_tf_dataset(workers=2, use_multiprocessing=True)
    out["tf_cardinality"] = int(dataset.cardinality())
    out["tf_fit"] = _recording_fit(dataset, 3, shuffle=False)
    out["tf_epoch_ends_after_fit"] = seq.epoch_ends
    # A pass stopped early is not an epoch: the next pass starts the same epoch again.
    out["tf_partial"] = [int(b[0][0, 0]) for b in dataset.take(2)]
    out["tf_after_partial"] = [int(b[0][0, 0]) for b in dataset]
    out["tf_pids_started"] = len(_pids(dataset._seqpipe_feed.enqueuer))
    pids = _pids(dataset._seqpipe_feed.enqueuer)
    del dataset
    gc.collect()
    out["tf_alive_after_gc"] = _alive(pids)
    out["tf_segments_after_gc"] = _segments()

    # Left running on purpose: the parent test checks that exit cleans up.
    dataset = Marked().as_keras(workers=2, use_multiprocessing=True)
    out["left_at_exit_fit"] = _recording_fit(dataset, 1, shuffle=False)
    out["left_at_exit_pids"] = _pids(dataset.feed.enqueuer)
    out["pid"] = os.getpid()


def main():
    out = {}
    keras_checks(out)
    tf_checks(out)
    json.dump(out, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
