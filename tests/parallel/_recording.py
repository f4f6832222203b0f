"""Shared helpers for the trainer checks (imported only in TensorFlow subprocesses)."""

import os

import keras
import numpy as np
import tensorflow as tf

from seqpipe.pipeline import Pipeline
from tests.parallel._data import make_data  # noqa: F401 (the trainer checks import it here)


@keras.saving.register_keras_serializable("seqpipe_tests")
class DropId(keras.layers.Layer):
    """Drops the id column (a Lambda layer would not survive clone_model); when
    ``SEQPIPE_RECORD_IDS`` names a file, appends the ids of every training batch (padding
    rows included) to it: a side channel of what was trained on."""

    def call(self, inputs, training=None):
        if training and os.environ.get("SEQPIPE_RECORD_IDS"):
            tf.py_function(_append_ids, [inputs[:, 4]], [])
        return inputs[:, :4]


def _append_ids(ids):
    line = " ".join(str(int(i)) for i in ids.numpy())
    with open(os.environ["SEQPIPE_RECORD_IDS"], "a") as f:
        f.write(line + "\n")


def make_model(seed=0, **compile_args):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), DropId(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", **compile_args)
    return model


class RecordingPipeline(Pipeline):
    """Records, per epoch, the ids of the samples fed with a non-zero weight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = {}

    def get_batch(self, index, epoch):
        batch = super().get_batch(index, epoch)
        ids = batch[0][:, 4].astype(int)
        weights = batch[2] if len(batch) == 3 else np.ones(len(ids))
        self.seen.setdefault(str(epoch), []).extend(ids[weights > 0].tolist())
        return batch


def make_classifier(seed=0, **compile_args):
    """A 3-class softmax model on the 4 features, compiled with ``metrics`` and
    ``weighted_metrics`` accuracy (and whatever ``compile_args`` override)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((5,)), DropId(), keras.layers.Dense(3, activation="softmax")]
    )
    compile_args = {
        "optimizer": keras.optimizers.SGD(0.1),
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "weighted_metrics": ["accuracy"],
        **compile_args,
    }
    model.compile(**compile_args)
    return model


def classes(x):
    """Three classes from the features of ``make_data``."""
    return np.digitize(x[:, 0] - x[:, 1], [-0.5, 0.5]).astype("int64")
