"""GPU readiness: MultiGPUTrainer on every visible GPU, checked and timed.

Run: ``python benchmarks/gpu_check.py`` on a GPU machine (``--cpu 2`` instead runs the
same checks on 2 logical CPU devices: a smoke run for machines without GPUs). With
``mixed_float16`` on, a small convolutional model trains on a synthetic image
`Pipeline` read by 4 worker processes, with ``cpu_merge=True`` and with
``cpu_merge=False`` (NCCL on GPUs). It checks:

- exactly-once accounting: the ids of the samples each step trains on are recorded
  inside the model (a ``py_function``), and every sample appears once per epoch;
- after one epoch, the weights on all devices equal a 1-device run's within ``--atol``.

Each check prints as a target, labelled met or not met. Then it prints images/s for the
trainer on 1 device and on all of them, and for Keras' ``model.fit`` on one device
(steady epochs, the first one excluded). It exits with status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from _common import markdown_table, target_line  # noqa: E402
from trainer import epoch_timer  # noqa: E402

NUM_CLASSES = 10


def _configure(cpu_devices: int) -> list[str]:
    import tensorflow as tf

    if cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        config = [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        tf.config.set_logical_device_configuration(cpu, config)
        return [f"/cpu:{i}" for i in range(cpu_devices)]
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        sys.exit("no GPU is visible; use --cpu N for a smoke run on logical CPU devices")
    return [f"/gpu:{i}" for i in range(len(gpus))]


def _scale(batch):
    images, ids, labels = batch
    return (images.astype(np.float32) / 255.0, ids), labels


def make_pipeline(samples: int, batch_size: int):
    """Synthetic images whose mean brightness encodes the class; ids ride along."""
    from seqpipe.pipeline import Pipeline
    from seqpipe.transforms import Lambda

    rng = np.random.default_rng(0)
    labels = np.arange(samples) % NUM_CLASSES
    images = rng.integers(0, 100, (samples, 32, 32, 3), dtype=np.uint8)
    images += (labels * 15).astype(np.uint8)[:, None, None, None]
    ids = np.arange(samples, dtype=np.int32)
    return Pipeline((images, ids, labels), batch_size=batch_size, shuffle=True, seed=0) | Lambda(
        _scale
    )


def make_model(record_to: str | None):
    """A small CNN; with ``record_to``, training steps append their sample ids to it."""
    import keras
    import tensorflow as tf

    def append(ids):
        with open(record_to, "a") as f:
            f.write(" ".join(str(int(i)) for i in ids.numpy()) + "\n")

    class RecordIds(keras.layers.Layer):
        """Passes the features through; records the batch's ids when training."""

        def call(self, inputs, training=None):
            features, ids = inputs
            if training and record_to:
                tf.py_function(append, [ids], [])
            return features

    keras.utils.set_random_seed(0)
    image = keras.Input((32, 32, 3))
    ids = keras.Input((), dtype="int32")
    h = keras.layers.Conv2D(32, 3, activation="relu")(image)
    h = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = RecordIds()([h, ids])
    out = keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32")(h)
    model = keras.Model([image, ids], out)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def checked_epoch(devices, cpu_merge, args, tmp) -> tuple[list, list[str]]:
    """One recorded epoch; returns the weights and the accounting problems found."""
    from seqpipe.parallel import MultiGPUTrainer

    record = os.path.join(tmp, f"ids-{len(devices)}-{cpu_merge}")
    model = make_model(record)
    seq = make_pipeline(args.samples, args.batch)
    MultiGPUTrainer(model, cpu_merge=cpu_merge).fit(
        seq, devices=devices, epochs=1, workers=4, use_multiprocessing=True, verbose=0
    )
    with open(record) as f:
        ids = sorted(int(i) for i in f.read().split())
    problems = []
    if ids != list(range(args.samples)):
        missing = sorted(set(range(args.samples)) - set(ids))
        problems.append(
            f"{len(devices)} devices, cpu_merge={cpu_merge}: {len(ids)} samples trained, "
            f"{len(ids) - len(set(ids))} twice, missing {missing[:10]}"
        )
    return model.get_weights(), problems


def images_per_second(devices, cpu_merge, args, keras_fit=False) -> float:
    from seqpipe.parallel import MultiGPUTrainer

    model = make_model(None)
    seq = make_pipeline(args.samples, args.batch)
    times: list[float] = []

    if keras_fit:
        import tensorflow as tf

        with tf.device(devices[0]):
            data = seq.as_keras(workers=4, use_multiprocessing=True)
            model.fit(
                data, epochs=args.epochs, verbose=0, callbacks=[epoch_timer(times)], shuffle=False
            )
    else:
        MultiGPUTrainer(model, cpu_merge=cpu_merge).fit(
            seq,
            devices=devices,
            epochs=args.epochs,
            workers=4,
            use_multiprocessing=True,
            callbacks=[epoch_timer(times)],
            verbose=0,
        )
    return args.samples / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", type=int, default=0, help="smoke run on N logical CPUs")
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4, help="timed runs (first excluded)")
    parser.add_argument("--atol", type=float, default=2e-3, help="weights vs 1 device")
    args = parser.parse_args()
    devices = _configure(args.cpu)
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    print(f"devices: {devices}; {args.samples} images of 32x32x3, global batch {args.batch}")
    accounting: list[str] = []  # runs that missed a sample or trained one twice
    targets: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        reference, found = checked_epoch(devices[:1], True, args, tmp)
        accounting += found
        for cpu_merge in (True, False):
            weights, found = checked_epoch(devices, cpu_merge, args, tmp)
            accounting += found
            diff = max(float(np.abs(a - b).max()) for a, b in zip(weights, reference, strict=True))
            name = f"cpu_merge={cpu_merge}: weights vs 1 device, max |diff|"
            targets.append(target_line(name, diff, "<=", args.atol, "", 6))
    targets.append(
        target_line("runs with a sample missed or trained twice", len(accounting), "==", 0, "", 0)
    )
    print("\n".join(targets))
    rows = [
        ["MultiGPUTrainer, 1 device", f"{images_per_second(devices[:1], True, args):,.0f}"],
        [
            f"MultiGPUTrainer, {len(devices)} devices, cpu_merge=True",
            f"{images_per_second(devices, True, args):,.0f}",
        ],
        [
            f"MultiGPUTrainer, {len(devices)} devices, cpu_merge=False",
            f"{images_per_second(devices, False, args):,.0f}",
        ],
        ["keras model.fit, 1 device", f"{images_per_second(devices, True, args, True):,.0f}"],
    ]
    print(markdown_table(["run (mixed_float16, 4 worker processes)", "images/s"], rows))
    problems = accounting + [line for line in targets if not line.endswith(": met")]
    if problems:
        print("FAILED:\n" + "\n".join(problems))
        sys.exit(1)
    print("all checks passed: exactly-once accounting and weights match")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
