"""Pipelines and stages with known costs, for the profile, autotune and input-metric
tests (importable by worker processes)."""

import time

import numpy as np

from seqpipe.pipeline import Pipeline, Sequence
from seqpipe.transforms import Lambda, Normalize, RandomFlip

SLOW_SECONDS = 0.02


def slow_batch(batch):
    """The known slow stage: sleeps 20 ms (waits, as on I/O), returns the batch."""
    time.sleep(SLOW_SECONDS)
    return batch


def burn_batch(batch):
    """A CPU-bound stage: ~20 ms of GIL-holding arithmetic, returns the batch."""
    deadline = time.process_time() + SLOW_SECONDS
    total = 0
    while time.process_time() < deadline:
        total += sum(i * i % 7 for i in range(1000))
    return batch


def slow_pipeline(samples=640):
    """Images normalised, then the 20 ms stage, then a random flip."""
    x = np.random.default_rng(0).random((samples, 8, 8, 3), dtype=np.float32)
    y = np.arange(samples)
    return (
        Pipeline((x, y), batch_size=8, seed=0)
        | Normalize(on=0)
        | Lambda(slow_batch)
        | RandomFlip(on=0)
    )


class SlowSequence(Sequence):
    """A plain Sequence whose batches take 20 ms; counts its on_epoch_end calls."""

    def __init__(self, batches=30):
        self.batches = batches
        self.epochs_ended = 0

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        time.sleep(SLOW_SECONDS)
        return np.full((4, 4), index, dtype=np.float32)

    def on_epoch_end(self):
        self.epochs_ended += 1


def nap_batch(batch):
    """A 2 ms stage: long enough for scale events to land while batches are in flight."""
    time.sleep(0.002)
    return batch


_BALLAST = []


def ballast_batch(batch):
    """The 20 ms stage of a worker that holds 48 MB of its own memory (kept per process)."""
    if not _BALLAST:
        _BALLAST.append(np.ones(48 * 2**20, dtype=np.uint8))
    time.sleep(SLOW_SECONDS)
    return batch
