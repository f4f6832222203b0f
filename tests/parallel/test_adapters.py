"""as_keras / as_tf_dataset fed by one OrderedEnqueuer kept across epochs.

The TensorFlow checks run once in a fresh process (tests/parallel/_adapter_checks.py);
the feed itself is tested here without TensorFlow.
"""

import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqpipe.parallel.feed import EnqueuerFeed
from seqpipe.parallel.shm import leftover_segments
from seqpipe.pipeline import Pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 6  # NUM_BATCHES of the checks


def _marks(epoch):
    return [100 * epoch + i for i in range(N)]


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def checks():
    pytest.importorskip("tensorflow")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-m", "tests.parallel._adapter_checks"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.timeout(300)
def test_model_fit_reads_every_batch_once_in_order_from_workers_started_once(checks):
    assert checks["keras_workers_seen_by_keras"] == [0, False]  # Keras starts no pool
    assert checks["keras_fit"] == [_marks(0), _marks(1), _marks(2)]
    assert checks["keras_epoch_ends"] == 3
    assert checks["keras_pids_started"] == 2
    # A second fit on the same dataset goes on with the same workers.
    assert checks["keras_second_fit"] == [_marks(3)]
    assert checks["keras_pids_after_second_fit"] == 2


@pytest.mark.timeout(300)
def test_model_fit_shuffle_true_is_overridden_by_the_pipelines_order(checks):
    # Keras' shuffle=True only permutes batches: they come in the pipeline's order,
    # computed ahead by the workers, without a warning.
    assert checks["keras_shuffled_fit"] == [_marks(0), _marks(1), _marks(2)]
    assert checks["keras_shuffled_epoch_ends"] == 3
    assert checks["keras_shuffled_warnings"] == []


@pytest.mark.timeout(300)
def test_tf_dataset_epochs_through_fit_and_early_stops(checks):
    assert checks["tf_cardinality"] == N
    assert checks["tf_fit"] == [_marks(0), _marks(1), _marks(2)]
    assert checks["tf_epoch_ends_after_fit"] == 3
    assert checks["tf_partial"] == _marks(3)[:2]
    assert checks["tf_after_partial"] == _marks(3)
    assert checks["tf_pids_started"] == 2


@pytest.mark.timeout(300)
def test_close_garbage_collection_and_exit_leave_nothing_behind(checks):
    assert checks["manual_epoch"] == _marks(0)
    for key in ("keras_alive_after_close", "manual_alive_after_gc", "tf_alive_after_gc"):
        assert checks[key] == [], key
    for key in ("keras_segments_after_close", "manual_segments_after_gc", "tf_segments_after_gc"):
        assert checks[key] == [], key
    # The checks process exited with a dataset still holding workers.
    assert checks["left_at_exit_fit"] == [_marks(0)]
    assert len(checks["left_at_exit_pids"]) == 2
    assert all(_gone(pid) for pid in checks["left_at_exit_pids"])
    assert leftover_segments(f"seqpipe_{checks['pid']}_") == []


# -- the feed, without TensorFlow -----------------------------------------------------


@pytest.mark.timeout(60)
@settings(max_examples=15, deadline=None)
@given(passes=st.lists(st.integers(0, 7), min_size=1, max_size=6))
def test_feed_delivers_whole_epochs_exactly_once(passes):
    # Each pass takes some batches: a whole epoch (4) ends it, fewer rewind it.
    seq = Pipeline(np.arange(10), batch_size=3, shuffle=True, seed=2)
    feed = EnqueuerFeed(seq, 2, False, 3)
    epoch = 0
    for taken in passes:
        feed.rewind()
        got = [feed.next_batch().tolist() for _ in range(min(taken, len(seq)))]
        expected = [seq.get_batch(i, epoch).tolist() for i in range(len(got))]
        assert got == expected
        if len(got) == len(seq):
            feed.finish_epoch()
            epoch += 1
        assert seq.epoch == epoch
    feed.stop()


@pytest.mark.timeout(60)
def test_feed_keeps_its_worker_processes_across_epochs_and_frees_them_when_collected():
    seq = Pipeline(np.arange(200_000, dtype=np.float64), batch_size=50_000)
    feed = EnqueuerFeed(seq, 2, True, 2)
    for _ in range(3):
        batches = [feed.next_batch() for _ in range(len(seq))]
        assert [float(b[0]) for b in batches] == [0.0, 50_000.0, 100_000.0, 150_000.0]
        del batches
        feed.finish_epoch()
    pool = feed.enqueuer._executor.pool
    pids, prefix = list(pool.worker_pids_started), pool.shm.prefix
    assert len(pids) == 2 and seq.epoch == 3
    # A partial epoch is ended by the caller: the workers go, the epoch still ends.
    feed.next_batch()
    feed.finish_epoch()
    assert seq.epoch == 4 and all(_gone(pid) for pid in pids)
    feed.next_batch()
    pool = feed.enqueuer._executor.pool
    pids, prefix = list(pool.worker_pids_started), pool.shm.prefix
    del feed, pool
    gc.collect()
    assert all(_gone(pid) for pid in pids)
    assert leftover_segments(prefix) == []
