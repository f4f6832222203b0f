"""`DiskCache` shared by processes (NOTE [ Disk cache across processes ])."""

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from seqpipe.sources._disk_cache import DiskCache

ENTRY = 1000  # bytes per entry
BUDGET = 5 * ENTRY  # five of the thirty keys fit


def _value(key):
    return bytes([key]) * ENTRY


def _entries_bytes(directory):
    total = 0
    for entry in os.scandir(directory):
        if entry.is_file() and not entry.name.startswith(".partial-"):
            with contextlib.suppress(FileNotFoundError):  # evicted since the listing
                total += entry.stat().st_size
    return total


def _read_and_evict(directory, seed, reads):
    cache = DiskCache(directory, BUDGET)
    rng = np.random.default_rng(seed)
    for key in rng.integers(0, 30, reads):
        got = cache.get(("k", int(key)), lambda key=key: _value(int(key)))
        assert got == _value(int(key)), f"key {key} read {got[:10]!r}"
    return reads


@pytest.mark.timeout(120)
def test_two_processes_reading_and_evicting_one_small_cache(tmp_path):
    # Every miss pushes an entry out while the other process reads: a read may find
    # its entry evicted between opening it and refreshing its mtime.
    ctx = multiprocessing.get_context("fork")
    largest = 0
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        runs = [pool.submit(_read_and_evict, str(tmp_path), seed, 3000) for seed in (1, 2)]
        while not all(run.done() for run in runs):
            largest = max(largest, _entries_bytes(tmp_path))
            time.sleep(0.001)
        assert [run.result() for run in runs] == [3000, 3000]
    # Over budget only by entries written and not yet counted: one per process.
    assert largest <= BUDGET + 2 * ENTRY
    assert _entries_bytes(tmp_path) <= BUDGET
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".partial-")]


def test_scans_are_amortised_and_sweep_what_killed_processes_left(tmp_path):
    hour_ago = time.time() - 3700
    (tmp_path / "locks").mkdir()
    leftovers = [tmp_path / ".partial-old", tmp_path / "locks" / "old.lock"]
    recent = [tmp_path / ".partial-writing", tmp_path / "locks" / "waited-on.lock"]
    for path in leftovers + recent:
        path.write_bytes(b"x")
    for path in leftovers:
        os.utime(path, (hour_ago, hour_ago))
    cache = DiskCache(tmp_path, BUDGET)
    assert cache.get(("k", 0), lambda: _value(0)) == _value(0)  # the first write scans
    assert [p.exists() for p in leftovers + recent] == [False, False, True, True]
    # Writes under budget only add to the record: no scan, so no sweep either.
    late = tmp_path / ".partial-late"
    late.write_bytes(b"x")
    os.utime(late, (hour_ago, hour_ago))
    for key in range(1, 5):
        cache.get(("k", key), lambda key=key: _value(key))
    assert late.exists() and _entries_bytes(tmp_path) <= BUDGET
    # The write that passes the budget scans: it sweeps, and evicts the least recently
    # read entries down to 90 % of the budget.
    assert cache.get(("k", 0), lambda: b"not fetched") == _value(0)  # now the newest
    cache.get(("k", 5), lambda: _value(5))
    assert not late.exists() and _entries_bytes(tmp_path) == 4 * ENTRY
    assert cache.get(("k", 0), lambda: b"not fetched") == _value(0)
    assert cache.get(("k", 1), lambda: b"fetched again") == b"fetched again"  # evicted
