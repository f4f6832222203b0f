"""seqpipe quickstart: an HDF5 file, a shuffled pipeline, workers, and training.

Run: ``python examples/quickstart.py``. It writes a small HDF5 file of synthetic images
and labels under a temporary directory, declares a shuffled, batched pipeline with
resize, normalize and to_categorical, reads one epoch through the multiprocess
OrderedEnqueuer and checks every sample arrived exactly once, then trains a small Keras
model on the pipeline with MultiGPUTrainer on whatever devices exist (the GPUs, else
two logical CPU devices), with accuracy as a compiled metric and a validation pipeline,
and prints the devices used, the losses and accuracies, and how much of each epoch the
loop waited for input.
"""

from __future__ import annotations

import os
import tempfile
import time

import h5py
import numpy as np

from seqpipe.pipeline import Pipeline
from seqpipe.sources import HDF5Matrix
from seqpipe.transforms import Normalize, Resize, ToCategorical

NUM_IMAGES, NUM_CLASSES = 512, 10


def write_dataset(path: str) -> None:
    """Noisy images whose red channel encodes the class."""
    rng = np.random.default_rng(0)
    labels = np.arange(NUM_IMAGES) % NUM_CLASSES
    images = rng.integers(0, 60, (NUM_IMAGES, 48, 48, 3), dtype=np.uint8)
    images[..., 0] += (labels * 20).astype(np.uint8)[:, None, None]  # learnable: colour
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(32, 48, 48, 3))
        f.create_dataset("labels", data=labels)


def build_pipeline(path: str) -> Pipeline:
    x = HDF5Matrix(path, "images")
    y = HDF5Matrix(path, "labels")
    return (
        Pipeline((x, y), batch_size=64, shuffle=True, seed=0)
        | Resize((32, 32), on=0)
        | Normalize(on=0)
        | ToCategorical(NUM_CLASSES, on=1)
    )


def main() -> None:
    # Everything runs under the __main__ guard: worker processes re-import this module.
    from seqpipe.parallel import OrderedEnqueuer

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.h5")
        write_dataset(path)
        seq = build_pipeline(path)
        print(f"dataset: {NUM_IMAGES} images of 48x48x3 in {path}")
        print(f"pipeline: {seq!r}")
        print(f"batches per epoch: {len(seq)}")
        start = time.perf_counter()
        delivered = []
        with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=2, max_queue_size=4)
            for xb, yb in enqueuer.iter_epoch():
                assert xb.shape[1:] == (32, 32, 3) and yb.shape[1] == NUM_CLASSES
                delivered.append((xb, yb))
            state = enqueuer.state()
        seconds = time.perf_counter() - start
        # The plan is a pure function of (seed, epoch): reading epoch 0 again in this
        # process gives exactly the batches the workers delivered, in the same order.
        for index, (xb, yb) in enumerate(delivered):
            x_ref, y_ref = seq.get_batch(index, epoch=0)
            assert np.array_equal(xb, x_ref) and np.array_equal(yb, y_ref), index
        counts = np.bincount(
            np.concatenate([yb.argmax(axis=1) for _, yb in delivered]), minlength=NUM_CLASSES
        )
        assert counts.sum() == NUM_IMAGES, counts
        print(
            f"one epoch through 2 worker processes: {len(delivered)} batches, "
            f"{counts.sum()} samples, each exactly once, {seconds:.2f} s "
            f"(start-up included); samples per class {counts.tolist()}"
        )
        print(f"enqueuer state to resume from: {state}")
        train(seq)


def train(seq: Pipeline) -> None:
    """Trains a small model on ``seq`` with MultiGPUTrainer on the devices that exist."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:  # two logical CPU devices, set before TensorFlow initialises
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import keras

    from seqpipe.parallel import MultiGPUTrainer

    devices = [f"/gpu:{i}" for i in range(len(gpus))] or ["/cpu:0", "/cpu:1"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    trainer = MultiGPUTrainer(model)
    history = trainer.fit(
        seq,
        devices=devices,
        epochs=5,
        workers=2,
        use_multiprocessing=True,
        validation_data=seq,
        verbose=0,
    )
    logs = {k: [round(v, 3) for v in values] for k, values in history.history.items()}
    print(f"trained on {devices}: loss per epoch {logs['loss']}, final loss {logs['loss'][-1]}")
    print(f"accuracy {logs['accuracy']}, val_accuracy {logs['val_accuracy']}")
    print(f"share of each epoch spent waiting for input: {logs['input_wait']}")
    loss, accuracy = trainer.evaluate(seq)
    print(f"evaluate: loss {loss:.3f}, accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
