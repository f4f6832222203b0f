"""The process pool's own parts: cancelled tickets and the workers' progress slots."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pytest

from seqpipe.parallel.messages import Task
from seqpipe.parallel.pool import ProcessPool
from seqpipe.parallel.shm import leftover_segments
from seqpipe.parallel.worker import Progress

from ._sequences import Ids, Killing


@pytest.mark.timeout(60)
def test_cancelled_tickets_drop_their_batches_and_free_their_segments():
    # 1 MiB batches travel in segments; one worker computes them in the order sent.
    pool = ProcessPool(1, max_free_segments=2)
    try:
        pool.start_epoch(0, cloudpickle.dumps(Ids(20, nbytes=1 << 20)))
        cancelled = [pool.submit(0, i) for i in range(10)]
        assert all(ticket.cancel() for ticket in cancelled)
        kept = pool.submit(0, 10)
        ids, payload = kept.result()  # batches 0-9 arrived before it and were dropped
        assert ids.tolist() == [100] and payload.shape == (1 << 20,) and np.all(payload == 10)
        # Held: batch 10's segment; free: at most max_free_segments.
        assert len(leftover_segments(pool.shm.prefix)) <= 3
        assert pool._results == {} and pool._cancelled == set()
        assert kept.cancel() is False  # its result is taken: nothing left to drop
        again = pool.submit(0, 11)
        assert again.result()[0].tolist() == [110]
    finally:
        pool.shutdown()
    assert leftover_segments(pool.shm.prefix) == []


@pytest.mark.timeout(60)
def test_max_retries_counts_retries_and_zero_fails_at_the_first_death():
    from seqpipe.parallel import WorkerCrashed

    pool = ProcessPool(1, max_retries=0)
    try:
        pool.start_epoch(0, cloudpickle.dumps(Killing(5, bad=2)))
        assert pool.submit(0, 1).result()[0].tolist() == [10]
        with pytest.raises(WorkerCrashed, match="killed 1 worker processes") as info:
            pool.submit(0, 2).result()
        assert info.value.exitcodes == [-signal.SIGKILL]
        assert pool.submit(0, 3).result()[0].tolist() == [30]  # the pool goes on
    finally:
        pool.shutdown()
    with pytest.raises(ValueError, match="max_retries must be an integer >= 0"):
        ProcessPool(1, max_retries=-1)


# A file-size limit makes the kernel refuse posix_fallocate (EFBIG, as a full tmpfs gives
# ENOSPC), whatever the free-space probe says: the check made on allocation.
_REFUSED = textwrap.dedent(
    """
    import os, resource, signal, sys
    from seqpipe.parallel.shm import NoSpace, SharedArrayPool
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, resource.RLIM_INFINITY))
    pool = SharedArrayPool(directory=sys.argv[1])
    try:
        pool.acquire(8 << 20)
    except NoSpace as error:
        print("refused:", error)
    print(pool.acquire(2 << 20).size, sorted(os.listdir(sys.argv[1])) == [pool.prefix + "1"])
    pool.close()
    """
)


def test_a_segment_the_kernel_refuses_raises_no_space_and_leaves_no_file(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", _REFUSED, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    refused, kept = out.stdout.splitlines()
    assert refused.startswith("refused: ") and "a batch needs 8.0 MiB" in refused
    assert kept == f"{2 << 20} True" and os.listdir(tmp_path) == []


# -- progress slots (NOTE [ Progress slot seqlock ] in parallel/worker.py) ----------------


def _hammer(slots, position, stop_at):
    # Task (k, k) then idle, as fast as it goes: a torn read shows epoch != index.
    progress = Progress(slots, position)
    progress.boot()
    k = 0
    while time.monotonic() < stop_at:
        k += 1
        progress.begin(Task(k, k))
        if k % 3 == 0:
            progress.end()


@pytest.mark.timeout(60)
def test_progress_slot_reads_are_never_torn_even_when_the_writer_is_killed():
    ctx = multiprocessing.get_context("fork")
    slots = ctx.RawArray("d", Progress.SIZE * 2)
    reader = Progress(slots, 1)
    reader.expect_boot()
    assert reader.current() is None and not reader.booted()
    writer = ctx.Process(target=_hammer, args=(slots, 1, time.monotonic() + 30))
    writer.start()
    try:
        seen = torn = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            current = reader.current()
            if current is not None:
                task, _ = current
                seen += 1
                torn += task.epoch != task.index
        assert seen > 1000 and torn == 0
        assert reader.booted()
        os.kill(writer.pid, signal.SIGKILL)  # anywhere, a write half-done included
        writer.join(10)
        last = reader.current()
        assert last is None or last[0].epoch == last[0].index
        # The parent re-arms the slot for the next worker, whatever was left in it.
        reader.expect_boot()
        assert reader.current() is None and not reader.booted()
        reader.begin(Task(4, 9))
        assert reader.current()[0] == Task(4, 9)
    finally:
        writer.kill()
        writer.join(10)


def test_a_write_cut_short_charges_no_task():
    slots = multiprocessing.RawArray("d", Progress.SIZE)
    progress = Progress(slots, 0)
    progress.begin(Task(1, 2))
    # What a SIGKILL between the counter's two stores leaves: the counter odd, the
    # fields half-written.
    view = np.frombuffer(slots, dtype=np.float64)
    view[Progress.SEQUENCE] += 1
    view[Progress.EPOCH] = 3
    assert progress.current() is None
    progress.begin(Task(3, 4))  # the next writer makes it whole again
    assert progress.current()[0] == Task(3, 4)
