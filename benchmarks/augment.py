"""Random augmentation on one core: seqpipe against Keras 3 layers and tf.image ops.

Run: ``python benchmarks/augment.py``. Batches of 64 uint8 images of 256x256x3, on one
CPU core (the process pins itself to one core; OpenMP and TensorFlow get one thread
each). Contenders, timed in interleaved rounds in this one process (median ms/batch):

- seqpipe: ``Pipeline(images, batch_size=64) | RandomResizedCrop(224, 224) |
  RandomFlip("horizontal")``, batches read with ``get_batch``;
- seqpipe with Keras' own pair of operations, ``RandomCrop(224, 224)`` instead;
- Keras 3 ``RandomCrop(224, 224)`` and ``RandomFlip("horizontal")`` layers called on
  the numpy batch (``training=True``), output converted to numpy;
- ``tf.image.stateless_random_crop`` (to 192x192, about the mean area of an ImageNet
  crop) + ``stateless_random_flip_left_right`` + ``tf.image.resize`` to 224x224.

Target: seqpipe's RandomResizedCrop + RandomFlip at most 1.0x the Keras layers' time,
printed as met or not met (`_common.target_line`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

# One core, one thread per library: set before numpy or TensorFlow start their pools.
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _common import markdown_table, target_line, timed  # noqa: E402

BATCH, SIDE, OUT = 64, 256, 224


def _contenders(images: np.ndarray) -> dict[str, object]:
    import keras
    import tensorflow as tf

    from seqpipe.pipeline import Pipeline
    from seqpipe.transforms import RandomCrop, RandomFlip, RandomResizedCrop

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rrc = Pipeline(images, batch_size=BATCH, seed=0) | RandomResizedCrop(OUT, OUT)
    rrc = rrc | RandomFlip("horizontal")
    crop = Pipeline(images, batch_size=BATCH, seed=0) | RandomCrop(OUT, OUT)
    crop = crop | RandomFlip("horizontal")
    keras_crop = keras.layers.RandomCrop(OUT, OUT, seed=0)
    keras_flip = keras.layers.RandomFlip("horizontal", seed=1)
    num_batches = len(images) // BATCH
    step = {"i": 0}

    def next_batch() -> tuple[int, np.ndarray]:
        step["i"] += 1
        index = step["i"] % num_batches
        return index, images[index * BATCH : (index + 1) * BATCH]

    def keras_layers() -> np.ndarray:
        _, batch = next_batch()
        return np.asarray(keras_flip(keras_crop(batch, training=True), training=True))

    def tf_image() -> np.ndarray:
        index, batch = next_batch()
        seed = tf.constant([index, step["i"]], dtype=tf.int64)
        out = tf.image.stateless_random_crop(batch, (BATCH, 192, 192, 3), seed=seed)
        out = tf.image.stateless_random_flip_left_right(out, seed=seed)
        return tf.image.resize(out, (OUT, OUT)).numpy()

    def seqpipe(seq: Pipeline) -> object:
        def run() -> np.ndarray:
            index, _ = next_batch()
            return seq.get_batch(index, epoch=0)

        return run

    return {
        "seqpipe RandomResizedCrop + RandomFlip": seqpipe(rrc),
        "seqpipe RandomCrop + RandomFlip": seqpipe(crop),
        "keras.layers RandomCrop + RandomFlip": keras_layers,
        "tf.image stateless crop + flip + resize": tf_image,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    args = parser.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (4 * BATCH, SIDE, SIDE, 3), np.uint8)
    contenders = _contenders(images)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up: graph building, lazy imports
        fn()
        fn()
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            seconds = timed(lambda fn=fn: [fn() for _ in range(args.batches)])
            times[name].append(1e3 * seconds / args.batches)
    ms = {name: statistics.median(values) for name, values in times.items()}
    keras_ms = ms["keras.layers RandomCrop + RandomFlip"]
    print(
        f"{BATCH} uint8 images {SIDE}x{SIDE}x3 -> {OUT}x{OUT}, one core "
        f"(cpu {sorted(os.sched_getaffinity(0))}), median of {args.rounds} rounds "
        f"x {args.batches} batches"
    )
    rows = [[name, f"{value:.1f}", f"{value / keras_ms:.2f}x"] for name, value in ms.items()]
    print(markdown_table(["augmentation", "ms/batch", "vs keras layers"], rows))
    ours = ms["seqpipe RandomResizedCrop + RandomFlip"] / keras_ms
    print(target_line("seqpipe RandomResizedCrop + RandomFlip vs keras layers", ours, "<=", 1.0))


if __name__ == "__main__":
    main()
