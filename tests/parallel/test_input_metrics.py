"""Input metrics: the workers' clocks, the enqueuer's monitor, and the scalars written
beside a Keras TensorBoard callback's logs (read back with TensorBoard's event reader)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.parallel.direct import plan_direct_read
from seqpipe.parallel.pool import ProcessPool
from seqpipe.parallel.stage_timing import StageTimed
from seqpipe.pipeline import Pipeline
from seqpipe.pipeline.stages import trace
from seqpipe.transforms import Lambda

from ._profiled import slow_batch, slow_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW = "Lambda(slow_batch, on=None)"
TAGS = ["wait_fraction", "batches_per_second", "queue_depth", "workers", "segment_bytes"]


@pytest.mark.timeout(60)
def test_worker_clocks_count_every_batch_and_the_wait_for_segments():
    import cloudpickle

    from ._sequences import Ids

    pool = ProcessPool(2, max_workers=3)
    try:
        pool.start_epoch(0, cloudpickle.dumps(Ids(24, nbytes=1 << 20, delay=0.01)))
        tickets = [pool.submit(0, i) for i in range(24)]
        assert [t.result()[0][0] for t in tickets] == [i * 10 for i in range(24)]
        stats = pool.stats()
        assert stats.totals.batches == 24
        assert 24 * 0.01 <= stats.totals.busy < 24 * 0.5
        # 1 MiB batches wait for a segment from the parent: part of the busy time.
        assert 0 < stats.totals.blocked < stats.totals.busy
        assert stats.segment_bytes >= 1 << 20 and stats.segments >= 1
        assert [c.pid for c in stats.per_worker] == pool.worker_pids()
        assert pool.add_worker() and not pool.add_worker()  # max_workers=3
        assert pool.retire_worker() and pool.retire_worker() and not pool.retire_worker()
    finally:
        pool.shutdown()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("workers", "processes"), [(2, True), (2, False), (0, False)])
def test_the_monitor_measures_stages_where_they_run(workers, processes):
    seq = slow_pipeline(80)
    with OrderedEnqueuer(seq, use_multiprocessing=processes, monitor=True) as enqueuer:
        enqueuer.start(workers=workers)
        start = enqueuer.monitor.read()
        batches = list(enqueuer.iter_epoch())
        metrics = enqueuer.monitor.metrics_since(start)
    assert metrics.batches == len(batches) == 10
    assert list(metrics.stage_ms) == [s.name for s in trace(seq, 1)]
    assert 19.5 <= metrics.stage_ms[SLOW] <= 60
    assert metrics.workers == workers
    assert 0.0 <= metrics.wait_fraction <= 1.0 and metrics.batches_per_second > 0
    scalars = metrics.scalars()
    assert scalars[f"input/stage_ms/{SLOW}"] == metrics.stage_ms[SLOW]
    assert {f"input/{tag}" for tag in TAGS} <= set(scalars)


@pytest.mark.timeout(60)
def test_timed_stages_still_read_in_place():
    # A transform-free pipeline is read straight into shared memory, stages timed or not.
    seq = Pipeline(np.zeros((256, 64, 64), np.float32), batch_size=32)
    assert plan_direct_read(StageTimed(seq), 0) == plan_direct_read(seq, 0) is not None
    with OrderedEnqueuer(seq, use_multiprocessing=True, monitor=True) as enqueuer:
        enqueuer.start(workers=2)
        start = enqueuer.monitor.read()
        assert sum(len(b) for b in enqueuer.iter_epoch()) == 256
        metrics = enqueuer.monitor.metrics_since(start)
        assert metrics.stage_ms["source: ndarray(256, 64, 64)"] > 0
        assert enqueuer.stats().totals.blocked == 0.0  # segments granted with the tasks


@pytest.mark.timeout(600)
def test_fit_with_tensorboard_writes_every_input_tag_beside_its_logs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tests.parallel._tensorboard_job", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=580,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    seq = Pipeline((np.zeros((96, 4)), np.zeros(96)), batch_size=16) | Lambda(slow_batch)
    stages = [s.name for s in trace(seq, 1)]
    # workers="auto" passes through both fits (AutoWorkers for the trainer) and tf.data.
    assert runs["tf_dataset"] == 6
    for run in ("trainer", "keras"):
        scalars = runs[run]["input"]
        expected = {f"input/{t}" for t in TAGS} | {f"input/stage_ms/{s}" for s in stages}
        assert set(scalars) == expected, run
        # One point per epoch, at step = epoch, as Keras' epoch scalars.
        assert all([step for step, _ in v] == [0, 1] for v in scalars.values()), (run, scalars)
        assert all(19.5 <= ms <= 60 for _, ms in scalars[f"input/stage_ms/{SLOW}"])
        assert all(0 <= v <= 1 for _, v in scalars["input/wait_fraction"])
        assert all(v > 0 for _, v in scalars["input/batches_per_second"])
        assert all(1 <= v <= 10 for _, v in scalars["input/workers"])  # max_queue_size
        assert "epoch_loss" in runs[run]["train"]  # Keras' own logs, same log_dir


def test_finding_fits_callbacks_keeps_none_of_its_locals_alive():
    # Before Python 3.13, reading a frame's f_locals leaves a snapshot on the frame: it
    # kept fit's previous tf.data iterator alive for an epoch, and the next lookup ran
    # its finalizer (1.1 s) inside the dataset's on_epoch_begin.
    import gc
    import weakref

    keras = pytest.importorskip("keras")
    from seqpipe.parallel.tensorboard_metrics import fit_tensorboard_log_dir

    class Iterator:
        pass

    def on_epoch_begin():
        return fit_tensorboard_log_dir()

    def fit(log_dir):
        # Found by its name in this frame, as in Keras' fit.
        callbacks = keras.callbacks.CallbackList([keras.callbacks.TensorBoard(log_dir)])  # noqa: F841
        found, gone = [], []
        iterator = Iterator()
        for _ in range(3):
            found.append(on_epoch_begin())
            old = weakref.ref(iterator)
            iterator = Iterator()  # fit's next epoch: its last reference to the old one
            gone.append(old() is None)
        return found, gone

    gc.disable()  # a collection must not be what frees them
    try:
        found, gone = fit("logs-a")
    finally:
        gc.enable()
    assert found == ["logs-a"] * 3
    assert gone == [True, True, True]
