"""Shared helpers for the trainer checks (imported only in TensorFlow subprocesses)."""

import numpy as np

from pipeline import Pipeline


def make_data(n):
    """A learnable linear problem; column 4 of x holds the sample id (unused by models)."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 4)).astype("float32")
    x = np.concatenate([features, np.arange(n, dtype="float32")[:, None]], axis=1)
    y = (features @ np.array([1.0, -2.0, 3.0, 0.5], "float32"))[:, None]
    return x, y


def make_model(seed=0):
    import keras

    class DropId(keras.layers.Layer):
        """Drops the id column (a Lambda layer would not survive clone_model)."""

        def call(self, inputs):
            return inputs[:, :4]

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), DropId(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
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
