"""A source that logs its reads, and a process that caches a pipeline over it.

Run as ``python -m tests.pipeline._cache_child CACHE_PATH LOG_PATH DELAY``: the kill and
concurrency tests of ``test_cache.py`` start it as a real process.
"""

import os
import sys
import time

import numpy as np

N, ROWS_PER_TASK = 40, 4


def expected(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """What the pipeline's samples are: (n, 3, 2) float32 rows equal to 10 * id, ids."""
    ids = np.arange(n)
    return np.repeat(10.0 * ids, 6).reshape(n, 3, 2).astype(np.float32), ids


class LoggedSource:
    """Rows ``expected()[0]``; every read appends ``"start stop pid"`` to ``log``.

    ``log`` and ``delay`` are not in the config: runs with another log share one cache.
    """

    def __init__(self, n: int = N, log: str | None = None, delay: float = 0.0) -> None:
        self.n, self.log, self.delay = n, log, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        ids = np.arange(self.n)[key]
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{ids.min()} {ids.max() + 1} {os.getpid()}\n")
        time.sleep(self.delay)
        return expected(self.n)[0][key]

    def get_config(self) -> dict:
        return {"n": self.n}


def logged_reads(log: str) -> list[tuple[int, int]]:
    """The ``(start, stop)`` ranges read, in order."""
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [tuple(int(v) for v in line.split()[:2]) for line in f if line.strip()]


def make_pipeline(log: str | None = None, delay: float = 0.0):
    from seqpipe.pipeline import Pipeline

    return Pipeline(
        (LoggedSource(log=log, delay=delay), expected()[1]), batch_size=8, shuffle=True, seed=1
    )


def main() -> None:
    path, log, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    make_pipeline(log, delay).cache(path, n_jobs=1, rows_per_task=ROWS_PER_TASK)


if __name__ == "__main__":
    main()
