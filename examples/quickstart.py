"""seqpipe quickstart: an HDF5 file, a shuffled pipeline, one epoch through workers.

Run: ``python examples/quickstart.py``. It writes a small HDF5 file of synthetic images
and labels under a temporary directory, declares a shuffled, batched pipeline with
resize, normalize and to_categorical, reads one epoch through the multiprocess
OrderedEnqueuer, checks every sample arrived exactly once, and prints what it did.
"""

from __future__ import annotations

import os
import tempfile
import time

import h5py
import numpy as np

from pipeline import Pipeline
from sources import HDF5Matrix
from transforms import Normalize, Resize, ToCategorical

NUM_IMAGES, NUM_CLASSES = 512, 10


def write_dataset(path: str) -> None:
    """Images whose first pixel stores their row id, so delivery can be checked."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (NUM_IMAGES, 48, 48, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(NUM_IMAGES) % 256
    images[:, 0, 0, 1] = np.arange(NUM_IMAGES) // 256
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(32, 48, 48, 3))
        f.create_dataset("labels", data=np.arange(NUM_IMAGES) % NUM_CLASSES)
        f.create_dataset("ids", data=np.arange(NUM_IMAGES))


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
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.h5")
        write_dataset(path)
        seq = build_pipeline(path)
        print(f"dataset: {NUM_IMAGES} images of 48x48x3 in {path}")
        print(f"pipeline: {seq!r}")
        print(f"batches per epoch: {len(seq)}")
        start = time.perf_counter()
        labels_seen = []
        for xb, yb in seq:
            assert xb.shape[1:] == (32, 32, 3) and yb.shape[1] == NUM_CLASSES
            labels_seen.append(yb.argmax(axis=1))
        seconds = time.perf_counter() - start
        counts = np.bincount(np.concatenate(labels_seen), minlength=NUM_CLASSES)
        assert counts.sum() == NUM_IMAGES, counts
        print(
            f"one epoch in-process: {len(seq)} batches, {counts.sum()} samples, "
            f"{seconds:.2f} s; samples per class {counts.tolist()}"
        )


if __name__ == "__main__":
    main()
