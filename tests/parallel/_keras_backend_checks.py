"""``model.fit(seq.as_keras())`` under one Keras backend, in a fresh process.

``KERAS_BACKEND=jax python -m tests.parallel._keras_backend_checks`` prints one JSON
object of measured values; tests/parallel/test_frameworks.py asserts on them. The model
records the ids of the samples it trains on (column 4 of ``x``) in eager mode: the side
channel of what was trained, whatever the backend.
"""

import json
import os
import sys
import time

import numpy as np

from tests.parallel._data import make_data

N, BATCH, EPOCHS = 200, 32, 3


def sleepy(batch):
    """A transform that waits 10 ms: a batch whose cost workers can overlap."""
    time.sleep(0.01)
    return batch


def _tensorflow_loaded():
    return "tensorflow" in sys.modules


def recording_model(keras, trained):
    """A linear model on x's 4 features that appends the ids of every training batch to
    ``trained`` (eagerly), and ``None`` at every epoch end (its callback)."""

    class RecordIds(keras.layers.Layer):
        def call(self, inputs, training=None):
            if training:
                trained.append(keras.ops.convert_to_numpy(inputs[:, 4]).astype(int).tolist())
            return inputs[:, :4]

    class EpochMarks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            trained.append(None)

    # Not keras.utils.set_random_seed: it imports TensorFlow whenever it is installed.
    model = keras.Sequential([keras.Input((5,)), RecordIds(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"], run_eagerly=True)
    return model, EpochMarks()


def per_epoch(trained):
    """The ids of each epoch, from ``recording_model``'s record."""
    epochs, current = [], []
    for ids in trained:
        if ids is None:
            epochs.append(current)
            current = []
        else:
            current.extend(ids)
    return epochs


def fit_checks(out, keras, Pipeline):
    trained = []
    model, epoch_marks = recording_model(keras, trained)
    x, y = make_data(N)
    xv, yv = make_data(64)
    seq = Pipeline((x, y), batch_size=BATCH, shuffle=True, seed=0)
    with (
        seq.as_keras(workers=2, use_multiprocessing=True) as data,
        Pipeline((xv, yv), batch_size=16).as_keras(workers=1) as validation,
    ):
        out["tf_after_as_keras"] = _tensorflow_loaded()
        # Keras' default shuffle=True: overridden, the pipeline's order applies.
        history = model.fit(
            data, epochs=EPOCHS, validation_data=validation, callbacks=[epoch_marks], verbose=0
        )
        out["history"] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        out["fit_ids"] = per_epoch(trained)
        out["pipeline_ids"] = [
            [int(i) for b in range(len(seq)) for i in seq.get_batch(b, e)[0][:, 4]]
            for e in range(EPOCHS)
        ]
        out["pipeline_epoch_after_fit"] = seq.epoch
        out["evaluate"] = [float(v) for v in model.evaluate(validation, verbose=0)]
        out["evaluate_numpy"] = [float(v) for v in model.evaluate(xv, yv, batch_size=16, verbose=0)]
    with Pipeline(xv, batch_size=16).as_keras(workers=2, use_multiprocessing=True) as inputs:
        predicted = model.predict(inputs, verbose=0)
    out["predict_max_error"] = float(np.abs(predicted - model.predict(xv, verbose=0)).max())
    out["tf_after_fit"] = _tensorflow_loaded()


def steps_per_epoch_checks(out, keras, Pipeline):
    """fit(steps_per_epoch=3) on a 6-batch pipeline: Keras keeps its iterator across its
    epochs, so two fit epochs make one pipeline epoch."""
    trained = []
    model, epoch_marks = recording_model(keras, trained)
    x, y = make_data(6 * BATCH)
    seq = Pipeline((x, y), batch_size=BATCH, shuffle=True, seed=1)
    with seq.as_keras(workers=2, use_multiprocessing=True) as data:
        model.fit(data, epochs=4, steps_per_epoch=3, callbacks=[epoch_marks], verbose=0)
    out["steps_fit_ids"] = per_epoch(trained)
    out["steps_pipeline_ids"] = [
        [int(i) for b in range(3 * half, 3 * half + 3) for i in seq.get_batch(b, e)[0][:, 4]]
        for e in range(2)
        for half in range(2)
    ]


def unlabelled_shard_checks(out, keras, Pipeline):
    """A sharded single-array pipeline: Keras must get y=None and the weights."""
    received = []

    class WeightsSeen(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            weights = keras.ops.convert_to_numpy(sample_weight).tolist()
            received.append([y is None, keras.ops.convert_to_numpy(x)[:, 0].tolist(), weights])
            return keras.ops.mean(y_pred**2)

    x = np.arange(5, dtype="float32")[:, None]
    seq = Pipeline(x, batch_size=2).shard(2, 1)  # ids 3, 4, then padding
    model = WeightsSeen()
    model.compile("sgd", run_eagerly=True)
    try:
        with seq.as_keras(workers=0) as data:
            model.fit(data, epochs=1, shuffle=False, verbose=0)
        out["unlabelled_shard"] = received
    except ValueError as error:
        out["unlabelled_shard_error"] = str(error)


def shuffle_speed_checks(out, keras, Pipeline):
    """Two fits side by side: Keras' default shuffle=True against shuffle=False."""

    zeros = np.zeros((40 * 8, 4), "float32")
    seq = Pipeline((zeros, zeros[:, :1]), batch_size=8) | sleepy
    seconds = {"default": [], "shuffle=False": []}
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with seq.as_keras(workers=2, use_multiprocessing=True) as data:
        model.fit(data, epochs=1, verbose=0)  # compiles the step, starts the workers
        for _ in range(2):  # interleaved, the best of each
            for name, args in (("default", {}), ("shuffle=False", {"shuffle": False})):
                start = time.perf_counter()
                model.fit(data, epochs=3, verbose=0, **args)
                seconds[name].append(time.perf_counter() - start)
    out["shuffle_seconds"] = {name: min(times) for name, times in seconds.items()}


def trainer_checks(out, keras):
    from seqpipe.parallel import MultiGPUTrainer

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    try:
        MultiGPUTrainer(model)
        out["trainer_error"] = None
    except RuntimeError as error:
        out["trainer_error"] = str(error)


def main():
    out = {}
    import seqpipe  # noqa: F401
    from seqpipe.pipeline import Pipeline

    Pipeline(make_data(8), batch_size=4)[0]
    out["tf_after_import_and_build"] = _tensorflow_loaded()
    import keras

    out["backend"] = keras.backend.backend()
    fit_checks(out, keras, Pipeline)
    steps_per_epoch_checks(out, keras, Pipeline)
    unlabelled_shard_checks(out, keras, Pipeline)
    shuffle_speed_checks(out, keras, Pipeline)
    trainer_checks(out, keras)
    json.dump(out, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
