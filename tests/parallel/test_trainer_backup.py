"""Exactly-once resume: a training process SIGKILLed mid-epoch, then restarted."""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from ._cluster import run_workers

pytest.importorskip("tensorflow")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
SAMPLES, EPOCHS, STEPS = 60, 3, 8  # as in tests/parallel/_backup_job.py


def _job(backup_dir, result, ids, *kill_at):
    return subprocess.run(
        [sys.executable, "-m", "tests.parallel._backup_job", str(backup_dir), str(result)]
        + [str(k) for k in kill_at],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=ROOT,
        env={**ENV, "SEQPIPE_RECORD_IDS": str(ids)},
    )


@pytest.mark.timeout(420)
def test_sigkill_at_a_random_step_then_resume_trains_every_sample_once(tmp_path):
    # A new random step every run; the assertion messages name it.
    kill_at = random.Random().choice([k for k in range(1, EPOCHS * STEPS) if k % STEPS])
    backup_dir, result, ids = tmp_path / "backup", tmp_path / "result.json", tmp_path / "ids"
    killed = _job(backup_dir, result, ids, kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-3000:])
    assert os.listdir(backup_dir) == ["seqpipe-backup.npz"], kill_at
    resumed = _job(backup_dir, result, ids)
    assert resumed.returncode == 0, (kill_at, resumed.stderr[-3000:])
    out = json.loads(result.read_text())

    # (a) Each epoch trained every sample exactly once, counted over both runs.
    trained = [int(i) for i in ids.read_text().split()]
    assert len(trained) == EPOCHS * SAMPLES, kill_at
    for epoch in range(EPOCHS):
        assert sorted(trained[epoch * SAMPLES : (epoch + 1) * SAMPLES]) == list(range(SAMPLES))
    # (b) The same weights as an uninterrupted run (op determinism on).
    for got, want in zip(out["weights"], out["reference"], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"kill_at={kill_at}")
    # (c) History continues the epoch numbering; the backup is deleted at the end.
    assert out["epochs"] == list(range(kill_at // STEPS, EPOCHS)), kill_at
    assert out["backup_left"] == []
    # Before resuming, another job (other pipeline, 3 replicas) was refused the backup.
    assert "pipeline is" in out["refused"], out["refused"]
    assert "replicas is 2 in the backup and 3 here" in out["refused"]


@pytest.mark.timeout(420)
def test_two_workers_killed_at_the_same_step_resume_from_it_together(tmp_path):
    # 64 samples, 2 workers, batches of 8: 4 steps per epoch on each worker.
    samples, steps = 64, 4
    kill_at = random.Random().choice([k for k in range(1, EPOCHS * steps) if k % steps])
    backup_dir = tmp_path / "backup"
    args = [sys.executable, "-m", "tests.parallel._backup_job", str(backup_dir)]
    result = str(tmp_path / "result{index}.json")

    def ids_file(index):
        return {"SEQPIPE_RECORD_IDS": str(tmp_path / f"ids{index}")}

    procs, errors = run_workers([*args, result, str(kill_at)], ENV, ROOT, 200, ids_file)
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, (kill_at, errors)
    procs, errors = run_workers([*args, result], ENV, ROOT, 200, ids_file)
    assert [p.returncode for p in procs] == [0, 0], (kill_at, errors)
    out = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2)]

    # Both resumed at the same step: each epoch, the two workers together trained every
    # sample exactly once, counted over both runs.
    lines = [(tmp_path / f"ids{i}").read_text().splitlines() for i in range(2)]
    assert [len(w) for w in lines] == [EPOCHS * steps] * 2, kill_at
    for epoch in range(EPOCHS):
        trained = [
            int(i)
            for w in lines
            for line in w[epoch * steps : (epoch + 1) * steps]
            for i in line.split()
        ]
        assert sorted(trained) == list(range(samples)), (kill_at, epoch)
    for a, b in zip(out[0]["weights"], out[1]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert out[0]["epochs"] == out[1]["epochs"] == list(range(kill_at // steps, EPOCHS))
    assert out[0]["backup_left"] == []
