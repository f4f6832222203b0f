"""Bounded open file handles (NOTE [ Open file handles ] in sources/_open_files.py)."""

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from seqpipe.sources import ParquetSource
from seqpipe.sources._open_files import OpenFiles

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def _write_files(directory, files, rows):
    directory.mkdir()
    for f in range(files):
        ids = np.arange(f * rows, (f + 1) * rows)
        pq.write_table(pa.table({"id": ids, "twice": 2 * ids}), directory / f"part-{f:05d}.parquet")


class _Handle:
    """A real file handle that records whether it was closed."""

    def __init__(self, log, key):
        self.file = open(os.devnull, "rb")  # noqa: SIM115 (closed by the pool)
        self.key = key
        log.append(self)

    def close(self):
        self.file.close()


def test_idle_handles_are_bounded_least_recently_used_closed_and_failures_closed():
    log = []
    files = OpenFiles(2)
    for key in ["a", "b", "a", "c"]:
        with files.lease(key, lambda key=key: _Handle(log, key)):
            pass
    # "a" was reused, then "b" (least recently used) closed to make room for "c".
    assert [h.key for h in log] == ["a", "b", "c"]
    assert [h.file.closed for h in log] == [False, True, False] and files.open_count == 2
    with pytest.raises(OSError, match="gone"), files.lease("a", lambda: _Handle(log, "a")) as h:
        raise OSError("gone")
    assert h.file.closed and files.open_count == 1  # a failed handle is never reused
    with files.lease("a", lambda: _Handle(log, "a")) as again:
        assert again is not h and files.open_count == 2
    with pytest.raises(ValueError, match=r"max_open_files must be an integer >= 0"):
        OpenFiles(-1)
    with pytest.raises(ValueError, match=r"max_open_files must be an integer >= 1"):
        ParquetSource(os.devnull, max_open_files=0)


def test_threads_racing_on_few_files_never_exceed_the_bound_or_leak():
    log, lock = [], threading.Lock()
    files = OpenFiles(3)
    barrier = threading.Barrier(8)

    def opener(key):
        with lock:
            return _Handle(log, key)

    def work(seed):
        rng = np.random.default_rng(seed)
        barrier.wait()
        for _ in range(300):
            key = int(rng.integers(5))
            with contextlib.suppress(OSError), files.lease(key, partial(opener, key)) as handle:
                assert handle.key == key and not handle.file.closed
                if rng.random() < 0.05:
                    raise OSError("a failed read")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    still_open = [h for h in log if not h.file.closed]
    assert len(still_open) == files.open_count <= 3
    files.close_all()
    assert all(h.file.closed for h in log)


def test_a_remote_source_read_by_many_threads_keeps_at_most_max_open_files(tmp_path):
    # A SubTreeFileSystem is not the local one: the source reads it as object storage,
    # by ranged reads through the FileStore's kept handles, here real file descriptors.
    _write_files(tmp_path / "rows", 120, 5)
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    before = _open_fds()
    src = ParquetSource("rows", columns=["id", "twice"], filesystem=fs, max_open_files=4)
    assert _open_fds() - before <= 4  # footers read one file at a time

    def read(seed):
        ids = np.random.default_rng(seed).permutation(600)[:150]
        batch = src[ids]
        return np.array_equal(batch["id"], ids) and np.array_equal(batch["twice"], 2 * ids)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, range(40)))
    assert _open_fds() - before <= 4 + 2  # kept handles, and the decoding threads' pipes


_MANY_FILES_CHILD = textwrap.dedent(
    """
    import os, resource, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from seqpipe.parallel import OrderedEnqueuer
    from seqpipe.pipeline import Pipeline
    from seqpipe.sources import ParquetSource
    if __name__ == "__main__":
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))  # workers inherit it
        source = ParquetSource({directory!r}, columns=["id", "twice"])
        seq = Pipeline(source, batch_size=40, shuffle=True, seed=5)
        with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=2, max_queue_size=4)
            batches = list(enqueuer.iter_epoch())
        ids = np.concatenate([b["id"] for b in batches])
        twice = np.concatenate([b["twice"] for b in batches])
        print(len(source.files), sorted(ids.tolist()) == list(range({rows})),
              bool(np.all(twice == 2 * ids)), len(os.listdir("/proc/self/fd")))
    """
)


@pytest.mark.timeout(300)
def test_two_thousand_files_read_shuffled_by_two_workers_under_ulimit_256(tmp_path):
    _write_files(tmp_path / "rows", 2000, 3)
    code = _MANY_FILES_CHILD.format(root=ROOT, directory=str(tmp_path / "rows"), rows=6000)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=280, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    files, every_row_once, rows_intact, fds = out.stdout.split()
    assert (files, every_row_once, rows_intact) == ("2000", "True", "True")
    assert int(fds) < 128
