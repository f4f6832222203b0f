import json
import mmap
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqpipe.parallel import (
    BatchTimeout,
    OrderedEnqueuer,
    RemoteTraceback,
    WorkerCrashed,
    failures,
    shm,
)
from seqpipe.parallel.direct import plan_direct_read
from seqpipe.parallel.shm import SHM_DIR_ENV, leftover_segments
from seqpipe.pipeline import Pipeline

from ._sequences import Failing, Hangs, Ids, Killing, OpenCVThreads, RaisesUnpicklable

pytestmark = pytest.mark.timeout(60)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _epoch(enqueuer):
    return [batch for batch in enqueuer.iter_epoch()]


def _ids_of(batches):
    return np.concatenate([b[0] if isinstance(b, tuple) else b for b in batches]).tolist()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; so is one reaped since the kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between open and read
        return False


def _wait_until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 9),
    shuffle=st.sampled_from([False, True, "batch"]),
    seed=st.integers(0, 1000),
    workers=st.integers(1, 3),
    queue=st.integers(1, 6),
)
def test_every_batch_exactly_once_in_plan_order_for_any_worker_count(
    n, batch_size, shuffle, seed, workers, queue
):
    p = Pipeline(np.arange(n), batch_size=batch_size, shuffle=shuffle, seed=seed)
    expected = [
        np.concatenate([p.get_batch(i, e) for i in range(len(p))]).tolist() for e in range(2)
    ]
    with OrderedEnqueuer(p, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=workers, max_queue_size=queue)
        got = [_ids_of(_epoch(enqueuer)) for _ in range(2)]
    assert got == expected
    assert sorted(got[0]) == list(range(n))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    workers=st.integers(0, 3),
    shuffle=st.booleans(),
    seed=st.integers(0, 50),
)
def test_threads_and_inline_deliver_the_same_batches(n, workers, shuffle, seed):
    seq = Ids(n)
    order = OrderedEnqueuer(Ids(n), shuffle=shuffle, seed=seed)
    order.start(workers=0)
    expected = _ids_of(_epoch(order))
    enqueuer = OrderedEnqueuer(seq, use_multiprocessing=False, shuffle=shuffle, seed=seed)
    enqueuer.start(workers=workers, max_queue_size=3)
    assert _ids_of(_epoch(enqueuer)) == expected
    enqueuer.stop()
    assert sorted(i // 10 for i in expected) == list(range(n))


def test_get_runs_on_epoch_end_once_per_epoch_in_the_parent_and_workers_see_it():
    seq = Ids(4)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2)
        gen = enqueuer.get()
        got = [next(gen)[0][0] for _ in range(12)]
    assert got == [0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32]
    assert seq.epoch_end_pids == [os.getpid()] * 2  # the third epoch has not ended


def test_queue_bounds_the_batches_computed_ahead(tmp_path):
    seq = Ids(40, log_dir=str(tmp_path))
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=3)
        gen = enqueuer.iter_epoch()
        for consumed in range(1, 4):
            next(gen)
            time.sleep(0.3)  # time enough for workers to run ahead if they could
            assert len(os.listdir(tmp_path)) <= consumed + 3


def _memory_of(array):
    """The object that owns ``array``'s memory, through views and memoryviews."""
    base = array
    while isinstance(base, np.ndarray | memoryview):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base


def test_arrays_of_64_kib_and_more_cross_through_shared_memory():
    for nbytes, in_shm in [(64 * 1024, True), (64 * 1024 - 1, False)]:
        with OrderedEnqueuer(Ids(3, nbytes=nbytes), use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=2)
            for index, (_, payload) in enumerate(enqueuer.iter_epoch()):
                assert payload.nbytes == nbytes and np.all(payload == index)
                assert isinstance(_memory_of(payload), mmap.mmap) is in_shm, nbytes


def test_large_arrays_arrive_through_shared_memory_and_stay_valid():
    seq = Ids(12, nbytes=1 << 20)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=2)
        kept = _epoch(enqueuer)  # the consumer keeps every batch of the epoch
        in_shm = leftover_segments(enqueuer._executor.pool.shm.prefix)
        assert len(in_shm) >= 12  # no segment was reused while its arrays were held
        for index, (ids, payload) in enumerate(kept):
            assert ids.tolist() == [index * 10]
            assert payload.shape == (1 << 20,) and np.all(payload == index % 251)
            assert isinstance(_memory_of(payload), mmap.mmap)
        # Dropping the batches recycles the segments: the next epoch allocates none.
        del kept, ids, payload
        before = len(leftover_segments(enqueuer._executor.pool.shm.prefix))
        for _ in enqueuer.iter_epoch():
            pass
        after = len(leftover_segments(enqueuer._executor.pool.shm.prefix))
        assert after <= before


def test_sigkilled_worker_is_replaced_and_nothing_is_lost_or_repeated():
    seq = Ids(30, delay=0.02)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        pool = enqueuer._executor.pool
        got = []
        for index, batch in enumerate(enqueuer.iter_epoch()):
            got.append(batch[0][0])
            if index in (5, 17):
                os.kill(pool.worker_pids()[0], signal.SIGKILL)
        assert got == [i * 10 for i in range(30)]
        assert len(pool.worker_pids_started) >= 4
        assert len(pool.worker_pids()) == 2


def test_a_batch_that_keeps_killing_workers_raises_naming_it():
    # max_retries counts retries: the first try and one retry, two workers killed.
    with OrderedEnqueuer(Killing(10, bad=6), use_multiprocessing=True, max_retries=1) as enqueuer:
        enqueuer.start(workers=2)
        got = []
        message = "batch 6 killed 2 worker processes, its first try and max_retries=1 retries"
        with pytest.raises(WorkerCrashed, match=message) as info:
            for batch in enqueuer.iter_epoch():
                got.append(batch[0][0])
    assert got == [0, 10, 20, 30, 40, 50]
    assert info.value.index == 6 and info.value.exitcodes == [-9, -9]
    assert not enqueuer.is_running()


def test_getitem_error_reaches_the_consumer_with_index_and_worker_traceback():
    enqueuer = OrderedEnqueuer(Failing(10, bad=7), use_multiprocessing=True)
    enqueuer.start(workers=2)
    pool = enqueuer._executor.pool
    pids = pool.worker_pids()
    with pytest.raises(ValueError, match="cannot read record 7") as info:
        _epoch(enqueuer)
    assert any("__getitem__(7)" in note for note in info.value.__notes__)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "_sequences.py" in cause.traceback_text and "in __getitem__" in cause.traceback_text
    assert not enqueuer.is_running()
    assert not any(_alive(pid) for pid in pids)
    assert leftover_segments(pool.shm.prefix) == []


def test_unpicklable_error_still_arrives_with_type_and_text():
    enqueuer = OrderedEnqueuer(RaisesUnpicklable(3), use_multiprocessing=True)
    enqueuer.start(workers=1)
    with pytest.raises(RuntimeError, match="Unpicklable: opaque failure"):
        _epoch(enqueuer)


@pytest.mark.parametrize("workers", [0, 2])
def test_thread_and_inline_errors_name_the_index_and_stop(workers):
    enqueuer = OrderedEnqueuer(Failing(5, bad=2))
    enqueuer.start(workers=workers)
    with pytest.raises(ValueError, match="record 2") as info:
        _epoch(enqueuer)
    assert any("__getitem__(2)" in note for note in info.value.__notes__)
    assert not enqueuer.is_running()


def test_stop_leaves_no_workers_and_no_shared_memory():
    enqueuer = OrderedEnqueuer(Ids(50, nbytes=200_000, delay=0.01), use_multiprocessing=True)
    enqueuer.start(workers=3)
    gen = enqueuer.get()
    batches = [next(gen) for _ in range(5)]
    pool = enqueuer._executor.pool
    pids = pool.worker_pids()
    assert all(_alive(p) for p in pids) and leftover_segments(pool.shm.prefix)
    enqueuer.stop()
    assert not any(_alive(p) for p in pids)
    assert leftover_segments(pool.shm.prefix) == []
    assert [b[1][0] for b in batches] == [0, 1, 2, 3, 4]  # delivered batches stay valid


@pytest.mark.parametrize(("timeout", "waits"), [(None, 5.0), (0.5, 0.5)])
def test_stop_kills_workers_still_busy_after_its_timeout(tmp_path, timeout, waits):
    seq = Hangs(10, bad=1, marker_dir=str(tmp_path), times=10**6, seconds=30)
    enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
    enqueuer.start(workers=2)
    next(enqueuer.get())
    pool = enqueuer._executor.pool
    pids = pool.worker_pids()
    assert _wait_until(lambda: os.listdir(tmp_path))  # a worker is in the 30 s batch
    started = time.monotonic()
    enqueuer.stop(timeout)
    assert waits - 0.1 <= time.monotonic() - started <= waits + 3.0
    assert not any(_alive(p) for p in pids)
    assert leftover_segments(pool.shm.prefix) == []


# Children set their SIGINT disposition themselves: a test run from a background job
# (`pytest ... &`) starts every process with SIGINT ignored, and the child inherits it.
_CHILD = textwrap.dedent(
    """
    import signal, sys, tempfile, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {root!r})
    from seqpipe.parallel import OrderedEnqueuer
    from tests.parallel._sequences import Hangs, Ids
    if __name__ == "__main__":
        seq = {sequence}
        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
        enqueuer.start(workers=2)
        gen = enqueuer.get()
        next(gen)
        pool = enqueuer._executor.pool
        print(pool.shm.prefix, *pool.worker_pids(), flush=True)
        try:
            for batch in gen:
                time.sleep(0.01)
        except KeyboardInterrupt:
            if {stay}:  # like a notebook: the program goes on after the Ctrl-C
                print("interrupted", flush=True)
                time.sleep(30)
            raise
    """
)


def _start_child(sequence="Ids(10**6, nbytes=100_000, delay=0.01)", stay=False):
    code = _CHILD.format(root=ROOT, sequence=sequence, stay=stay)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    prefix, *pids = child.stdout.readline().split()
    return child, prefix, [int(p) for p in pids]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_or_a_killed_parent_leave_nothing_behind(sig):
    child, prefix, pids = _start_child()
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    time.sleep(0.3)
    child.send_signal(sig)
    _, err = child.communicate(timeout=30)
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    assert _wait_until(lambda: not any(_alive(p) for p in pids)), pids
    assert _wait_until(lambda: leftover_segments(prefix) == []), leftover_segments(prefix)


def test_a_second_ctrl_c_kills_busy_workers_at_once():
    # A worker sits in a 30 s __getitem__(1): the first Ctrl-C's stop() would wait 5 s
    # for it; the second one kills it straight away, while the program goes on.
    child, prefix, pids = _start_child(
        "Hangs(10**6, bad=1, marker_dir=tempfile.mkdtemp(), times=10**6, seconds=30)",
        stay=True,
    )
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    try:
        assert child.stdout.readline().strip() == "interrupted"
        assert _wait_until(lambda: not any(_alive(p) for p in pids), 1.5), pids
        assert leftover_segments(prefix) == []
    finally:
        child.kill()
        child.communicate(timeout=30)


_TF_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from seqpipe.parallel import OrderedEnqueuer
    from tests.parallel._sequences import Ids
    if __name__ == "__main__":
        import tensorflow as tf
        tf.constant(1.0) + 1  # TensorFlow's thread pools run before any worker starts
        with OrderedEnqueuer(Ids(40, nbytes=100_000), use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=2)
            ids = [int(batch[0][0]) for batch in enqueuer.iter_epoch()]
            pool = enqueuer._executor.pool
        print(ids == [i * 10 for i in range(40)], pool.shm.prefix, *pool.worker_pids_started)
    """
)


@pytest.mark.timeout(120)
def test_safe_with_tensorflow_imported_in_the_parent():
    pytest.importorskip("tensorflow")
    out = subprocess.run(
        [sys.executable, "-c", _TF_CHILD.format(root=ROOT)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ok, prefix, *pids = out.stdout.split()
    assert ok == "True" and len(pids) == 2
    assert not any(_alive(int(p)) for p in pids)
    assert leftover_segments(prefix) == []


_UNGUARDED_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline

enqueuer = OrderedEnqueuer(Pipeline(np.zeros((8, 2)), batch_size=4), use_multiprocessing=True)
enqueuer.start(workers=2)
print(sum(1 for _ in enqueuer.iter_epoch()))
"""


@pytest.mark.timeout(120)
def test_a_script_without_a_main_guard_fails_with_the_fix_instead_of_respawning(tmp_path):
    # forkserver re-runs the script in every worker, which dies while starting; before
    # WorkerStartFailed the parent replaced such workers forever.
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT.format(root=ROOT))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "seqpipe.parallel.errors.WorkerStartFailed: 4 worker processes in a row exited while "
        "starting, the first and max_retries=3 restarts"
    )
    assert "if __name__ == '__main__':" in last


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 5),
    shuffle=st.sampled_from([False, True, "batch"]),
    enqueuer_shuffle=st.booleans(),
    cut=st.integers(0, 200),
    workers=st.integers(0, 2),
)
def test_resume_from_state_neither_repeats_nor_skips(
    n, batch_size, shuffle, enqueuer_shuffle, cut, workers
):
    def make():
        return Pipeline(np.arange(n), batch_size=batch_size, shuffle=shuffle, seed=3)

    def run(enqueuer, count):
        gen = enqueuer.get()
        return [next(gen).tolist() for _ in range(count)]

    total = 3 * len(make())
    cut = cut % (total + 1)
    straight = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1)
    straight.start(workers=0)
    expected = run(straight, total)

    first = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1)
    first.start(workers=workers)
    head = run(first, cut)
    state = json.loads(json.dumps(first.state()))
    first.stop()
    resumed = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1, initial_state=state)
    resumed.start(workers=workers)
    tail = run(resumed, total - cut)
    resumed.stop()
    assert head + tail == expected


def test_resume_with_processes_and_a_mismatched_state():
    p = Pipeline(np.arange(20), batch_size=3, shuffle=True, seed=9)
    with OrderedEnqueuer(p, use_multiprocessing=True) as first:
        first.start(workers=2)
        gen = first.get()
        head = [next(gen).tolist() for _ in range(9)]
        state = first.state()
    assert state["epoch"] == 1 and state["next_index"] == 2 and state["position"] == 6
    fresh = Pipeline(np.arange(20), batch_size=3, shuffle=True, seed=9)
    with OrderedEnqueuer(fresh, use_multiprocessing=True, initial_state=state) as second:
        second.start(workers=2)
        gen = second.get()
        tail = [next(gen).tolist() for _ in range(12)]
    reference = Pipeline(np.arange(20), batch_size=3, shuffle=True, seed=9)
    expected = [reference.get_batch(i, e).tolist() for e in range(3) for i in range(7)]
    assert head + tail == expected


@pytest.mark.parametrize(
    "other, message",
    [
        (dict(n=21), "num_samples is 20 in the state and 21 here"),
        (dict(seed=8), "seed is 9 in the state and 8 here"),
        (dict(shuffle="batch"), "shuffle is True in the state and 'batch' here"),
        (dict(seed=None), "build it with seed=9 to resume that run"),
    ],
)
def test_a_state_of_another_pipeline_is_refused_naming_what_differs(other, message):
    def make(n=20, seed=9, shuffle=True):
        return Pipeline(np.arange(n), batch_size=3, shuffle=shuffle, seed=seed)

    state = OrderedEnqueuer(make()).state()
    with pytest.raises(ValueError, match=re.escape(message)):
        OrderedEnqueuer(make(**other), initial_state=state)


def test_bad_states_are_refused_with_what_was_expected():
    p = Pipeline(np.arange(20), batch_size=3, shuffle=True, seed=9)
    state = OrderedEnqueuer(p).state()
    with pytest.raises(ValueError, match=r"initial_state must be a dict returned by .*\[3, 4\]"):
        OrderedEnqueuer(p, initial_state=[3, 4])
    with pytest.raises(
        ValueError, match=r"initial_state\['position'\] must be an integer in \[0, 20\]"
    ):
        OrderedEnqueuer(p, initial_state={**state, "position": 21})
    with pytest.raises(ValueError, match=r"initial_state\['epoch'\] must be an integer >= 0"):
        OrderedEnqueuer(p, initial_state={**state, "epoch": -1})
    old = {"epoch": 0, "next_index": 1, "plan": "3f2a", "num_batches": 7}
    with pytest.raises(ValueError, match="earlier version of seqpipe"):
        OrderedEnqueuer(p, initial_state=old)
    with pytest.raises(ValueError, match="shuffle must be True or False"):
        OrderedEnqueuer(p, shuffle=1)


def test_a_state_of_another_order_construction_is_refused():
    # The identity names how orders and sharded steps are built: a state saved under
    # another construction describes other batches, even with the same seed.
    p = Pipeline(np.arange(20), batch_size=3, shuffle=True, seed=9)
    enqueuer = OrderedEnqueuer(p)
    enqueuer.start(workers=0)
    next(enqueuer.get())
    state = enqueuer.state()
    enqueuer.stop()
    OrderedEnqueuer(p, initial_state=state)  # today's state resumes
    older = {**state, "identity": {**state["identity"], "order": "contiguous-shards"}}
    with pytest.raises(ValueError, match="order is 'contiguous-shards' in the state"):
        OrderedEnqueuer(p, initial_state=older)


def test_argument_errors():
    enqueuer = OrderedEnqueuer(Ids(3))
    with pytest.raises(ValueError, match="workers=-1"):
        enqueuer.start(workers=-1)
    with pytest.raises(RuntimeError, match="start"):
        next(enqueuer.get())
    with pytest.raises(ValueError, match="start_method"):
        OrderedEnqueuer(Ids(3), use_multiprocessing=True, start_method="teleport").start(2)
    for bad in (-1, 1.5, True):
        message = rf"max_retries must be an integer >= 0\. Received: max_retries={bad}"
        with pytest.raises(ValueError, match=message):
            OrderedEnqueuer(Ids(3), use_multiprocessing=True, max_retries=bad)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_other_start_methods(method):
    with OrderedEnqueuer(Ids(6), use_multiprocessing=True, start_method=method) as enqueuer:
        enqueuer.start(workers=2)
        assert [b[0][0] for b in enqueuer.iter_epoch()] == [0, 10, 20, 30, 40, 50]


def test_opencv_runs_one_thread_in_each_worker_process():
    with OrderedEnqueuer(OpenCVThreads(), use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2)
        assert [int(b[0]) for b in enqueuer.iter_epoch()] == [1, 1, 1, 1]


# -- hung workers (batch_timeout) ----------------------------------------------------


def test_a_hung_batch_is_killed_and_recomputed_on_a_fresh_worker(tmp_path):
    seq = Hangs(12, bad=4, marker_dir=str(tmp_path), times=1)
    with OrderedEnqueuer(seq, use_multiprocessing=True, batch_timeout=1.0) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        got = [int(batch[0][0]) for batch in enqueuer.iter_epoch()]
        pool = enqueuer._executor.pool
        assert len(pool.worker_pids_started) == 3  # one worker killed, one replacement
    assert got == [i * 10 for i in range(12)]
    assert len(os.listdir(tmp_path)) == 1


def test_a_batch_that_keeps_hanging_raises_batch_timeout_naming_it(tmp_path):
    seq = Hangs(10, bad=3, marker_dir=str(tmp_path), times=10**6)
    enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True, batch_timeout=0.5, max_retries=1)
    enqueuer.start(workers=2)
    got = []
    with pytest.raises(
        BatchTimeout, match=r"batch 3 took longer than batch_timeout=0.5 s on 2 worker processes"
    ) as info:
        for batch in enqueuer.iter_epoch():
            got.append(int(batch[0][0]))
    assert got == [0, 10, 20]
    assert info.value.index == 3 and info.value.seconds == 0.5
    assert info.value.exitcodes == [-9, -9] and len(os.listdir(tmp_path)) == 2
    assert not enqueuer.is_running()


def test_without_batch_timeout_a_long_batch_warns_with_its_index_and_pid(tmp_path, monkeypatch):
    assert failures.HANG_WARNING_SECONDS == 60  # the default the README gives; shortened here
    monkeypatch.setattr(failures, "HANG_WARNING_SECONDS", 0.4)
    seq = Hangs(6, bad=2, marker_dir=str(tmp_path), times=1, seconds=1.5)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2)
        pids = enqueuer._executor.pool.worker_pids_started
        with pytest.warns(RuntimeWarning, match=r"batch 2 \(epoch 0\) has been computing") as rec:
            got = [int(batch[0][0]) for batch in enqueuer.iter_epoch()]
    assert got == [i * 10 for i in range(6)]
    hang = [str(w.message) for w in rec if "has been computing" in str(w.message)]
    assert len(hang) == 1 and any(f"worker process {pid}" in hang[0] for pid in pids)
    assert len(pids) == 2  # warned, not killed


def test_batch_timeout_argument_errors():
    with pytest.raises(ValueError, match="batch_timeout=-1"):
        OrderedEnqueuer(Ids(3), use_multiprocessing=True, batch_timeout=-1)
    with pytest.raises(ValueError, match="a thread cannot be killed"):
        OrderedEnqueuer(Ids(3), batch_timeout=1.0).start(workers=2)


# -- a small /dev/shm -------------------------------------------------------------------


_SMALL = 16 << 20


@pytest.fixture(params=["tmpfs", "probe"])
def small_tmpfs(request, tmp_path, monkeypatch):
    """A 16 MiB SEQPIPE_SHM_DIR: a real tmpfs (needs mount rights, or skips), or a
    directory whose free-space probe reports what a 16 MiB filesystem would have left
    (runs anywhere)."""
    mount_point = tmp_path / "shm"
    mount_point.mkdir()
    if request.param == "probe":

        def free_bytes(directory):
            allocated = sum(e.stat().st_blocks * 512 for e in os.scandir(directory))
            return max(0, _SMALL - allocated)

        monkeypatch.setattr(shm, "free_bytes", free_bytes)
        monkeypatch.setenv(SHM_DIR_ENV, str(mount_point))
        yield str(mount_point)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'not permitted'}")
    monkeypatch.setenv(SHM_DIR_ENV, str(mount_point))
    yield str(mount_point)
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_batches_that_do_not_fit_a_small_shm_cross_the_pipe_exactly_once(small_tmpfs):
    # 6 MiB batches, 4 in flight and all kept by the consumer: 16 MiB runs out after
    # two; batch 5 alone (20 MiB) is larger than the whole tmpfs.
    sizes = {5: 20 << 20}
    seq = Ids(10, nbytes=6 << 20, sizes=sizes)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        prefix = enqueuer._executor.pool.shm.prefix
        with pytest.warns(RuntimeWarning, match=r"docker run --shm-size=") as rec:
            kept = _epoch(enqueuer)
        assert len([w for w in rec if "--shm-size" in str(w.message)]) == 1
        assert leftover_segments(prefix, small_tmpfs)  # shared memory was used too
    assert [int(ids[0]) for ids, _ in kept] == [i * 10 for i in range(10)]
    for index, (_, payload) in enumerate(kept):
        assert payload.shape == (sizes.get(index, 6 << 20),) and np.all(payload == index)
    assert leftover_segments(prefix, small_tmpfs) == []


def test_read_direct_on_a_small_shm_falls_back_to_the_pipe(small_tmpfs):
    data = np.arange(40 * 1024 * 128, dtype=np.uint8).reshape(40, 1024, 128) % 251
    p = Pipeline(data, batch_size=20)  # 2.5 MiB batches: six in flight overflow 16 MiB
    with OrderedEnqueuer(p, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=6)
        with pytest.warns(RuntimeWarning, match=r"--shm-size"):
            kept = [b for _ in range(4) for b in enqueuer.iter_epoch()]
    assert len(kept) == 8
    for i, batch in enumerate(kept):
        assert np.array_equal(batch, data[(i % 2) * 20 : (i % 2) * 20 + 20])


@pytest.mark.parametrize("shuffle", [False, "batch"])
def test_read_direct_segments_granted_with_tasks_hold_every_batch_once(shuffle):
    # Batches of a plain Pipeline get their segment sent with the task; a SIGKILLed
    # worker's granted segments go back to the pool, and its tasks to a fresh worker.
    data = (np.arange(45 * 64 * 256, dtype=np.int64).reshape(45, 64, 256) % 1_000_003).astype(
        np.float32
    )
    p = Pipeline(data, batch_size=4, shuffle=shuffle, seed=3)  # 256 KiB batches, last short
    with OrderedEnqueuer(p, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=6)
        pool = enqueuer._executor.pool
        for epoch in range(3):
            ids = []
            for k, batch in enumerate(enqueuer.iter_epoch()):
                if epoch == 1 and k == 3:
                    os.kill(pool.worker_pids()[0], signal.SIGKILL)
                assert np.array_equal(batch, data[p.plan.batch(k, epoch).indices])
                ids += batch[:, 0, 0].tolist()
            assert sorted(ids) == data[:, 0, 0].tolist()
        prefix = pool.shm.prefix
    assert leftover_segments(prefix) == []


# -- read-direct layouts ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 70),
    batch_size=st.integers(1, 9),
    shuffle=st.sampled_from([False, True, "batch"]),
    drop=st.booleans(),
    shards=st.integers(1, 3),
    epoch=st.integers(0, 3),
)
def test_read_direct_layout_matches_every_batch(n, batch_size, shuffle, drop, shards, epoch):
    # drop_remainder with less than one batch per shard is refused at construction.
    assume(not drop or n >= batch_size * shards)
    data = np.zeros((n, 40, 50), np.float32)  # 8 KB rows: any batch of 8+ goes direct
    p = Pipeline(data, batch_size=batch_size, shuffle=shuffle, seed=4, drop_remainder=drop)
    p = p.shard(shards, shards - 1) if shards > 1 else p
    p.set_epoch(epoch)
    for index in range(len(p)):
        plan = plan_direct_read(p, index)
        batch = p[index]
        rows = len(batch[0] if isinstance(batch, tuple) else batch)
        if plan is None:
            assert rows * 8000 < 64 * 1024
            continue
        out = plan.views(np.empty(plan.nbytes, np.uint8))
        assert out.shape == (rows, 40, 50) and out.dtype == np.float32


def test_a_missing_shm_dir_is_named_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv(SHM_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"nowhere.*does not exist; set SEQPIPE_SHM_DIR"):
        OrderedEnqueuer(Ids(3), use_multiprocessing=True).start(workers=1)
