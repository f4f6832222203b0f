"""Sequences used by the enqueuer tests; importable by worker processes."""

import os
import signal
import time

import numpy as np

from seqpipe.pipeline import Sequence


class Ids(Sequence):
    """Batch i is ``[i * 10 + epoch_marker]`` plus an optional payload of ``nbytes``."""

    def __init__(self, n, nbytes=0, delay=0.0, log_dir=None, sizes=None):
        self.n, self.nbytes, self.delay, self.log_dir = n, nbytes, delay, log_dir
        self.sizes = sizes or {}  # {index: nbytes} overriding nbytes
        self.marker = 0
        self.epoch_end_pids = []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if self.log_dir:
            with open(os.path.join(self.log_dir, f"{index}-{time.monotonic_ns()}"), "w"):
                pass
        if self.delay:
            time.sleep(self.delay)
        payload = np.full(self.sizes.get(index, self.nbytes), index % 251, dtype=np.uint8)
        return np.array([index * 10 + self.marker]), payload

    def on_epoch_end(self):
        self.marker += 1
        self.epoch_end_pids.append(os.getpid())


class Failing(Ids):
    """Raises ValueError at ``bad``."""

    def __init__(self, n, bad):
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index):
        if index == self.bad:
            raise ValueError(f"cannot read record {index}")
        return super().__getitem__(index)


class Killing(Ids):
    """Kills its own worker process with SIGKILL at ``bad``."""

    def __init__(self, n, bad):
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index):
        if index == self.bad:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


class RaisesUnpicklable(Ids):
    def __getitem__(self, index):
        raise Unpicklable("opaque failure")


class Hangs(Ids):
    """Batch ``bad`` sleeps ``seconds`` on its first ``times`` attempts (counted with
    files in ``marker_dir``, shared by all worker processes), then returns normally."""

    def __init__(self, n, bad, marker_dir, times=1, seconds=3600.0):
        super().__init__(n)
        self.bad, self.marker_dir, self.times, self.seconds = bad, marker_dir, times, seconds

    def __getitem__(self, index):
        if index == self.bad:
            attempt = len(os.listdir(self.marker_dir))
            if attempt < self.times:
                with open(os.path.join(self.marker_dir, f"attempt-{attempt}-{os.getpid()}"), "w"):
                    pass
                time.sleep(self.seconds)
        return super().__getitem__(index)


class OpenCVThreads(Sequence):
    """Batch i is ``[cv2.getNumThreads()]`` as seqpipe's OpenCV import sets it up."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        from seqpipe._core.opencv import opencv

        return np.array([opencv().getNumThreads()])


class ChunkedArray:
    """An in-memory array that says where its chunks start (as shard sources do)."""

    def __init__(self, data, chunks):
        self.data = np.asarray(data)
        self.chunks = np.asarray(chunks, dtype=np.int64)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        return self.data[key]
