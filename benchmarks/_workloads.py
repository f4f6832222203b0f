"""Benchmark workloads, as one batch function each, wrapped for every loader.

Kept in an importable module so that worker processes of every loader can find them.
"""

from __future__ import annotations

import time

import numpy as np

from seqpipe.pipeline import Sequence

TINY = (2000, (32, 16), "float32")
LARGE = (200, (64, 224, 224, 3), "uint8")
CPU_BATCHES = 200
IO_BATCHES = 300
IO_SECONDS = 0.02


def burn(loops: int) -> int:
    """Pure-Python arithmetic that holds the GIL for the whole call."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


class Workload(Sequence):
    """Batch ``i`` of a named workload; ``param`` is the CPU loop count for "cpu"; "io"
    waits 20 ms per batch (as on storage) and computes nothing."""

    def __init__(self, name: str, param: int = 0) -> None:
        self.name, self.param = name, param

    def __len__(self) -> int:
        if self.name == "tiny":
            return TINY[0]
        if self.name == "large":
            return LARGE[0]
        if self.name == "io":
            return IO_BATCHES
        return CPU_BATCHES

    def __getitem__(self, index: int):
        if self.name == "tiny":
            return np.full(TINY[1], index, dtype=TINY[2])
        if self.name == "large":
            return np.full(LARGE[1], index % 251, dtype=LARGE[2])
        if self.name == "io":
            time.sleep(IO_SECONDS)
            return np.full(8, index, dtype=np.int64)
        return np.full(8, burn(self.param), dtype=np.int64)


def keras_dataset(sequence):
    """Wraps a sequence as a Keras 3 PyDataset with 2 process workers."""
    import keras

    class Adapter(keras.utils.PyDataset):
        def __init__(self, seq):
            super().__init__(workers=2, use_multiprocessing=True, max_queue_size=10)
            self.seq = seq

        def __len__(self):
            return len(self.seq)

        def __getitem__(self, index):
            return (self.seq[index],)

    return Adapter(sequence)


def torch_dataset(sequence):
    """Wraps a sequence as a map-style PyTorch Dataset (one item = one batch)."""
    import torch.utils.data

    class Adapter(torch.utils.data.Dataset):
        def __init__(self, seq):
            self.seq = seq

        def __len__(self):
            return len(self.seq)

        def __getitem__(self, index):
            return self.seq[index]

    return Adapter(sequence)
