"""Exactly-once resume: training processes SIGKILLed mid-epoch, then restarted on another
replica or worker count (NOTE [ Exactly-once resume ] in parallel/backup.py)."""

import json
import os
import random
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from ._cluster import run_workers

pytest.importorskip("tensorflow")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
SAMPLES, EPOCHS, BATCH = 64, 3, 8  # as in tests/parallel/_backup_job.py
JOB = [sys.executable, "-m", "tests.parallel._backup_job"]
# Weights of a run resumed on 3 replicas against an uninterrupted 1-replica run: the
# same batches, gradients summed over replicas in another order (float32, op
# determinism on). Measured: at most 3e-7 over the runs of this file.
WEIGHT_ATOL = 1e-5


def _job(backup_dir, result, ids, *options):
    return subprocess.run(
        [*JOB, str(backup_dir), str(result), *map(str, options)],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=ROOT,
        env={**ENV, "SEQPIPE_RECORD_IDS": str(ids)},
    )


def _lines(path):
    return [[int(i) for i in line.split()] for line in path.read_text().splitlines()]


def _assert_each_epoch_once(lines, context):
    """The recorded batches, in training order, hold every sample once per epoch."""
    epochs, current = [], []
    for line in lines:
        current += line
        if len(current) == SAMPLES:
            epochs.append(sorted(current))
            current = []
    assert current == [] and len(epochs) == EPOCHS, context
    assert all(epoch == list(range(SAMPLES)) for epoch in epochs), context


@pytest.mark.timeout(420)
@pytest.mark.parametrize("every, where", [(1, "mid-epoch"), (5, "between saves"), (1, "epoch end")])
def test_killed_on_two_replicas_resumed_on_three_trains_every_sample_once(tmp_path, every, where):
    steps = SAMPLES // BATCH  # per epoch, on one worker
    choices = {
        "mid-epoch": [k for k in range(1, EPOCHS * steps) if k % steps],
        "between saves": [k for k in range(every + 1, EPOCHS * steps) if k % every],
        "epoch end": [steps, 2 * steps],
    }[where]
    kill_at = random.Random().choice(choices)  # a new step every run: messages name it
    saved_steps = every * (kill_at // every)
    context = f"kill_at={kill_at}, every={every}"
    backup, result = tmp_path / "backup", tmp_path / "result.json"
    killed = _job(
        backup, result, tmp_path / "killed", "--kill-at", kill_at, "--every", every, "--replicas", 2
    )
    assert killed.returncode == -signal.SIGKILL, (context, killed.stderr[-3000:])
    assert os.listdir(backup) == ["seqpipe-backup.npz"], context
    resumed = _job(backup, result, tmp_path / "resumed", "--every", every, "--replicas", 3)
    assert resumed.returncode == 0, (context, resumed.stderr[-3000:])
    out = json.loads(result.read_text())

    # (a) Each epoch trained every sample once, over both runs: the killed run counts up
    # to its last backup (2 replicas: 2 lines a step), what came after is retrained.
    lines = _lines(tmp_path / "killed")[: 2 * saved_steps] + _lines(tmp_path / "resumed")
    _assert_each_epoch_once(lines, context)
    # (b) The weights of an uninterrupted 1-replica run (op determinism on).
    for got, want in zip(out["weights"], out["reference"], strict=True):
        np.testing.assert_allclose(got, want, atol=WEIGHT_ATOL, err_msg=context)
    # (c) History continues the epoch numbering; the backup is deleted at the end.
    epoch = (saved_steps - 1) // steps
    assert out["epochs"] == list(range(epoch, EPOCHS)), context
    assert out["backup_left"] == []
    # (d) One line says where it resumed and on what.
    position = ((saved_steps - 1) % steps + 1) * BATCH
    assert out["resumed"] == [
        f"resumed epoch {epoch} at sample {position} of {SAMPLES} (was 1 workers x 2 "
        f"replicas of batch 8, now 1 x 3 of batch 8)"
    ], context
    # Before resuming, a job with another pipeline (another seed) was refused the backup.
    assert "pipeline seed is 4 in the backup and 5 here" in out["refused"], out["refused"]


def _ids_file(tmp_path, run):
    return lambda index: {"SEQPIPE_RECORD_IDS": str(tmp_path / f"{run}{index}")}


@pytest.mark.timeout(420)
@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_workers_killed_then_resumed_on_another_worker_count(tmp_path, before, after):
    # Two MultiWorkerMirroredStrategy workers on 127.0.0.1, or one process; one replica
    # each. Steps per epoch: 64 / (8 * workers).
    steps = SAMPLES // (BATCH * before)
    kill_at = random.Random().choice([k for k in range(1, EPOCHS * steps) if k % steps])
    context = f"kill_at={kill_at}, {before} -> {after} workers"
    backup = tmp_path / "backup"
    args = [*JOB, str(backup), str(tmp_path / "result{index}.json")]
    killed = ["--kill-at", str(kill_at)]
    if before == 2:
        procs, errors = run_workers(args + killed, ENV, ROOT, 200, _ids_file(tmp_path, "killed"))
        codes = [p.returncode for p in procs]
    else:
        run = _job(backup, tmp_path / "result0.json", tmp_path / "killed0", *killed)
        codes, errors = [run.returncode], [run.stderr]
    assert codes == [-signal.SIGKILL] * before, (context, [e[-2000:] for e in errors])
    if after == 2:
        procs, errors = run_workers(args, ENV, ROOT, 200, _ids_file(tmp_path, "resumed"))
        codes = [p.returncode for p in procs]
    else:
        run = _job(backup, tmp_path / "result0.json", tmp_path / "resumed0")
        codes, errors = [run.returncode], [run.stderr]
    assert codes == [0] * after, (context, [e[-2000:] for e in errors])

    # Each worker's replica records one line per step; steps run in lockstep, so the
    # workers' lines of one step are consecutive in training order.
    def merged(run, workers, count=None):
        files = [_lines(tmp_path / f"{run}{i}")[:count] for i in range(workers)]
        return [line for step in zip(*files, strict=True) for line in step]

    lines = merged("killed", before, kill_at) + merged("resumed", after)
    _assert_each_epoch_once(lines, context)
    out = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(after)]
    for other in out[1:]:
        for a, b in zip(out[0]["weights"], other["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    epoch, position = (kill_at - 1) // steps, ((kill_at - 1) % steps + 1) * BATCH * before
    assert out[0]["epochs"] == list(range(epoch, EPOCHS)), context
    assert re.fullmatch(
        rf"resumed epoch {epoch} at sample {position} of {SAMPLES} \(was {before} workers x 1 "
        rf"replicas of batch 8, now {after} x 1 of batch 8\)",
        out[0]["resumed"][0],
    ), (context, out[0]["resumed"])
    assert out[0]["backup_left"] == []
