"""seqpipe quickstart: an HDF5 dataset, a shuffled and augmented pipeline, its promises
checked in this run, and training on every device there is.

Run: ``python examples/quickstart.py`` (about a minute on 2 cores). It writes 3,072
synthetic 48x48 colour images of 10 classes to a temporary HDF5 file, declares a
pipeline (resize, random flip, normalize, one-hot labels), and then shows, each measured
here:

1. where the time of a batch goes (`parallel.profile`: each stage's share, the workers'
   busy and idle time, and the bottleneck with its fix);
2. that fix applied: the stages before the first random one cached to HDF5, and the
   profile again;
3. one epoch through 2 worker processes delivers every sample exactly once;
4. the same bytes with 0 workers and with 2 worker processes;
5. a stop mid-epoch and a resume on another topology (2 shards of another batch size)
   that repeats and skips nothing;
6. training with `MultiGPUTrainer` on the GPUs, else on two logical CPU devices, its
   input read by worker processes whose count is tuned while it trains
   (``workers="auto"``): the devices, loss and accuracy per epoch, validation accuracy,
   and how much of each epoch the loop waited for input.
"""

from __future__ import annotations

import os

# TensorFlow's C++ log lines (CUDA probing, CPU features) are not Python warnings: this
# variable, set before TensorFlow is imported, silences those of its logging. Python
# warnings are left alone.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator

import h5py
import numpy as np

from seqpipe.parallel import OrderedEnqueuer, profile
from seqpipe.pipeline import Pipeline
from seqpipe.sources import HDF5Matrix
from seqpipe.transforms import Normalize, RandomFlip, Resize, ToCategorical

NUM_TRAIN, NUM_VAL, NUM_CLASSES, BATCH = 3072, 512, 10, 64


def write_dataset(path: str) -> None:
    """Noisy images whose hue names the class; ``ids`` holds each image's number."""
    rng = np.random.default_rng(0)
    total = NUM_TRAIN + NUM_VAL
    labels = rng.integers(0, NUM_CLASSES, total)
    hues = np.linspace(0, 2 * np.pi, NUM_CLASSES, endpoint=False)[labels]
    colours = 128 + 90 * np.stack([np.cos(hues + k * 2 * np.pi / 3) for k in range(3)], -1)
    noise = rng.normal(0, 40, (total, 48, 48, 3))
    images = np.clip(colours[:, None, None, :] + noise, 0, 255).astype(np.uint8)
    with h5py.File(path, "w") as f:
        for name, start, stop in (("train", 0, NUM_TRAIN), ("val", NUM_TRAIN, total)):
            f.create_dataset(f"{name}/images", data=images[start:stop], chunks=(64, 48, 48, 3))
            f.create_dataset(f"{name}/labels", data=labels[start:stop])
            f.create_dataset(f"{name}/ids", data=np.arange(stop - start))


def build_pipeline(
    path: str, split: str, batch_size: int = BATCH, shuffle: bool = True
) -> Pipeline:
    """The pipeline a user writes: sources, batching, shuffling, transforms."""
    x = HDF5Matrix(path, f"{split}/images")
    y = HDF5Matrix(path, f"{split}/labels")
    return (
        Pipeline((x, y), batch_size=batch_size, shuffle=shuffle, seed=0)
        | Resize((32, 32), on=0)
        | RandomFlip("horizontal", on=0)
        | Normalize(on=0)
        | ToCategorical(NUM_CLASSES, on=1)
    )


def ids_pipeline(path: str, batch_size: int = BATCH) -> Pipeline:
    """The training samples' ids in the training pipeline's order: the order is a pure
    function of (sample count, seed, epoch), so the same arguments give the same one."""
    return Pipeline(HDF5Matrix(path, "train/ids"), batch_size=batch_size, shuffle=True, seed=0)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Sends what native code writes to file descriptor 2 to /dev/null, and Python's own
    ``sys.stderr`` (warnings, tracebacks) still to the terminal.

    Since TensorFlow 2.19, TF_CPP_MIN_LOG_LEVEL does not stop the lines TensorFlow's C++
    writes while it starts, before its logging reads the variable
    (tensorflow/tensorflow#100442).
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    try:
        os.dup2(null, 2)
        sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1)
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(terminal, 2)
        os.close(terminal)
        os.close(null)


def epoch_through(seq: Pipeline, workers: int) -> list:
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=workers, max_queue_size=8)
        return list(enqueuer.iter_epoch())


def apply_advice(seq: Pipeline, path: str) -> Pipeline:
    """The profile's fix: the stages before the first random one, computed once."""
    started = time.perf_counter()
    cached = seq.cache(path, n_jobs=2, verbose=False)
    seconds = time.perf_counter() - started
    report = profile(cached, batches=24, workers=2)
    print(
        f"cache:         the stages before RandomFlip written to HDF5 in {seconds:.1f} s; "
        f"now {report.throughput:.0f} batches/s, bottleneck {report.bottleneck}"
    )
    return cached


def check_exactly_once(path: str) -> None:
    batches = epoch_through(ids_pipeline(path), workers=2)
    counts = np.bincount(np.concatenate(batches), minlength=NUM_TRAIN)
    print(
        f"exactly once:  one epoch through 2 worker processes delivered {int(counts.sum()):,} "
        f"samples; every one of the {NUM_TRAIN:,} once ({int((counts == 1).sum()):,}), "
        f"none twice ({int((counts > 1).sum())})"
    )


def check_same_bytes(seq: Pipeline) -> None:
    seq.set_epoch(0)  # each pass runs on_epoch_end: both must read epoch 0
    inline = epoch_through(seq, workers=0)
    seq.set_epoch(0)
    processes = epoch_through(seq, workers=2)
    same = all(
        a.tobytes() == b.tobytes()
        for one, two in zip(inline, processes, strict=True)
        for a, b in zip(one, two, strict=True)
    )
    print(
        f"same bytes:    {len(inline)} augmented batches with 0 workers and with 2 worker "
        f"processes are {'identical' if same else 'DIFFERENT'}"
    )


def check_resume(path: str) -> None:
    # Stop after 5 batches of 64, then finish the epoch on 2 shards of batches of 48.
    first = OrderedEnqueuer(ids_pipeline(path))
    first.start(workers=0)
    stream = first.iter_epoch()
    seen = [int(i) for _ in range(5) for i in next(stream)]
    state = first.state()
    first.stop()
    shards = [ids_pipeline(path, batch_size=48).shard(2, k) for k in range(2)]
    enqueuers = [OrderedEnqueuer(shard, initial_state=state) for shard in shards]
    rest = []
    for enqueuer in enqueuers:
        enqueuer.start(workers=0)
        for ids, weights in enqueuer.iter_epoch():
            rest += ids[weights > 0].astype(int).tolist()
    together = seen + rest
    print(
        f"resume:        stopped after {len(seen)} samples (state: epoch {state['epoch']}, "
        f"position {state['position']}); resumed on 2 shards of batch 48: {len(rest):,} "
        f"more, {len(together) - len(set(together))} repeated, "
        f"{NUM_TRAIN - len(set(together))} missing"
    )


def train(train_seq: Pipeline, val_seq: Pipeline) -> None:
    """Trains a small CNN with MultiGPUTrainer on the devices that exist."""
    with native_stderr_silenced():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:  # two logical CPU devices, set before TensorFlow initialises
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
        tf.config.list_logical_devices()  # initialises them while native logs are off
    import keras

    from seqpipe.parallel import MultiGPUTrainer

    devices = [f"/gpu:{i}" for i in range(len(gpus))] or ["/cpu:0", "/cpu:1"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
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
        train_seq,
        devices=devices,
        epochs=4,
        workers="auto",  # grown while the loop waits for input, within the CPUs
        use_multiprocessing=True,
        validation_data=val_seq,
        verbose=0,
    )
    logs = history.history
    print(f"training:      on {devices}")
    print("  epoch   loss  accuracy  val_accuracy  input_wait")
    for epoch in history.epoch:
        print(
            f"  {epoch:>5}  {logs['loss'][epoch]:.3f}  {logs['accuracy'][epoch]:>8.3f}"
            f"  {logs['val_accuracy'][epoch]:>12.3f}  {logs['input_wait'][epoch]:>9.0%}"
        )
    loss, accuracy = trainer.evaluate(val_seq)
    print(f"evaluate:      validation loss {loss:.3f}, accuracy {accuracy:.3f}")


def main() -> None:
    # Everything runs under the __main__ guard: worker processes re-import this module.
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.h5")
        write_dataset(path)
        train_seq = build_pipeline(path, "train")
        val_seq = build_pipeline(path, "val", shuffle=False)
        print(f"dataset:       {NUM_TRAIN:,} training and {NUM_VAL:,} validation images")
        print(f"pipeline:      {train_seq!r}")
        report = profile(train_seq, batches=24, workers=2)
        print("profile:       " + str(report).replace("\n", "\n               "))
        train_seq = apply_advice(train_seq, os.path.join(tmp, "train-cache.h5"))
        check_exactly_once(path)
        check_same_bytes(train_seq)
        check_resume(path)
        train(train_seq, val_seq)
    print(f"total:         {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
