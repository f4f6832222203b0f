"""MultiGPUTrainer, multi_gpu_model and the adapters, on logical CPU devices and on two
real worker processes (MultiWorkerMirroredStrategy over 127.0.0.1)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}


@pytest.fixture(scope="module")
def checks():
    out = subprocess.run(
        [sys.executable, "-m", "tests.parallel._trainer_checks"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _exactly_once(ids, n=103):
    return sorted(ids) == list(range(n))


@pytest.mark.timeout(300)
def test_n_replicas_match_one_replica_on_the_same_global_batches(checks):
    # 103 samples in batches of 16: the last global batch (7) splits unevenly, e.g.
    # [2, 2, 3] on 3 replicas and [4, 3] on 2; each sample still counts exactly once.
    for key, diff in checks["max_weight_diff"].items():
        assert diff < 1e-5, key


@pytest.mark.timeout(300)
def test_loss_decreases_with_2_and_3_replicas(checks):
    for n in ("2", "3"):
        losses = checks["losses"][n]
        assert losses[0] > losses[1] > losses[2] and losses[2] < 0.2 * losses[0]


@pytest.mark.timeout(300)
def test_every_sample_is_seen_exactly_once_per_epoch(checks):
    for n, epochs in checks["seen"].items():
        # Epoch 0 starts with the one read of batch 0 that infers the output signature.
        assert _exactly_once(epochs["0"][16:]), n
        assert _exactly_once(epochs["1"]) and _exactly_once(epochs["2"]), n


@pytest.mark.timeout(300)
def test_callbacks_validation_predict_and_evaluate(checks):
    assert checks["callback_epochs"] == [[0, ["loss", "val_loss"]], [1, ["loss", "val_loss"]]]
    assert checks["predict_diff"] < 1e-5
    assert checks["evaluate_diff"] < 1e-4


@pytest.mark.timeout(300)
def test_multi_gpu_model_matches_the_template_and_trains_it(checks):
    assert checks["multi_gpu_predict_diff"] < 1e-6
    assert checks["multi_gpu_trains_template"] is True
    assert "gpus=2" in checks["missing_gpus_error"]
    assert "only has 0 GPU(s)" in checks["missing_gpus_error"]


@pytest.mark.timeout(300)
def test_keras_and_tf_data_adapters(checks):
    first, second = checks["keras_fit_losses"]
    assert second < first
    assert checks["tf_signature"] == ["(None, 5)", "(None, 1)"]
    epoch_a, epoch_b = checks["tf_epochs"]
    assert [size for size, _ in epoch_a] == [16] * 6 + [7]
    assert [first_id for _, first_id in epoch_a] != [first_id for _, first_id in epoch_b]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.timeout(180)
def test_two_worker_processes_train_to_the_end_with_uneven_shards(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, outputs = [], []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        output = tmp_path / f"worker{index}.json"
        outputs.append(output)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.parallel._mwms_worker", str(output)],
                cwd=ROOT,
                env={**ENV, "TF_CONFIG": json.dumps(config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        errors = [p.communicate(timeout=150)[1] for p in procs]
    finally:
        for p in procs:  # a peer that never joins must not outlive the test
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    results = [json.loads(o.read_text()) for o in outputs]
    for epoch in ("0", "1"):
        # Epoch 0 of each worker starts with its signature read of batch 0.
        skip = 8 if epoch == "0" else 0
        together = results[0]["seen"][epoch][skip:] + results[1]["seen"][epoch][skip:]
        assert _exactly_once(together), epoch
    for a, b in zip(results[0]["weights"], results[1]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # synchronous replicas agree
    assert results[0]["loss"][1] < results[0]["loss"][0]
