"""OpenCV, imported on first use and set up for worker processes."""

from __future__ import annotations

import functools
import multiprocessing
from types import ModuleType


@functools.cache
def opencv() -> ModuleType:
    """Returns ``cv2``, imported on first use so that importing seqpipe stays light.

    In a worker process (a ``multiprocessing`` child) OpenCV runs on one thread: the
    workers are the parallelism, and OpenCV's own threads would compete with them
    (2 enqueuer workers on 2 cores: about 25 % more images/s single-threaded), the rule
    PyTorch's DataLoader applies to torch's threads in its workers.
    """
    import cv2

    if multiprocessing.parent_process() is not None:
        cv2.setNumThreads(1)
    return cv2
