"""MultiGPUTrainer, multi_gpu_model and the adapters, on logical CPU devices and on two
real worker processes (MultiWorkerMirroredStrategy over 127.0.0.1)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ._cluster import run_workers

pytest.importorskip("tensorflow")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
JOB_MWMS = [sys.executable, "-m", "tests.parallel._mwms_worker"]


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = subprocess.run(
        [sys.executable, "-m", "tests.parallel._trainer_checks", str(tmp_path_factory.mktemp("t"))],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _exactly_once(ids, n=103):
    return sorted(ids) == list(range(n))


@pytest.mark.timeout(450)
def test_a_second_fit_continues_the_optimizer_as_keras_does(checks):
    # Adam's moments, its iteration count and the learning rate carry over: two
    # fit(epochs=1) equal one fit(epochs=2), on 1 and 2 replicas, and model.fit then
    # MultiGPUTrainer.fit equals model.fit(epochs=2) (op determinism on).
    assert checks["second_fit_diff"]["1"] < 1e-6, checks["second_fit_diff"]
    assert checks["second_fit_diff"]["2"] < 1e-5, checks["second_fit_diff"]
    assert checks["after_model_fit_diff"] < 1e-5
    assert checks["iterations_after"] == 2 * 7  # 103 samples in batches of 16


@pytest.mark.timeout(450)
def test_learning_rate_callbacks_reach_the_replicas_under_mixed_precision(checks):
    expected = [round(0.1 / (e + 1), 6) for e in range(3)]
    assert checks["scheduled_rates"] == {"float32": expected, "mixed_float16": expected}


@pytest.mark.timeout(450)
@pytest.mark.parametrize("structure", ["dict", "list"])
def test_two_output_models_train_as_model_fit_does(checks, structure):
    got = checks["two_outputs"][structure]
    # The per-output losses and metrics Keras logs, with the same values.
    assert got["keys"] == got["keras_keys"]
    assert {"loss", "reg_loss", "cls_loss", "cls_accuracy", "reg_mae"} <= set(got["keys"])
    assert got["log_diff"] < 1e-5, got
    assert got["weight_diff"] < 1e-5, got


@pytest.mark.timeout(450)
def test_n_replicas_match_one_replica_on_the_same_global_batches(checks):
    # 103 samples in batches of 16: the last global batch (7) splits unevenly, e.g.
    # [2, 2, 3] on 3 replicas and [4, 3] on 2; each sample still counts exactly once.
    # Replicas sum the same float32 gradients in another order: rounding only.
    for key, diff in checks["max_weight_diff"].items():
        assert diff < 1e-6, key


@pytest.mark.timeout(450)
def test_loss_decreases_with_2_and_3_replicas(checks):
    for n in ("2", "3"):
        losses = checks["losses"][n]
        assert losses[0] > losses[1] > losses[2] and losses[2] < 0.2 * losses[0]


@pytest.mark.timeout(450)
def test_every_sample_is_seen_exactly_once_per_epoch(checks):
    # The feed infers the output signature from its first batch: no extra read.
    for n, epochs in checks["seen"].items():
        assert all(_exactly_once(epochs[e]) for e in ("0", "1", "2")), n


@pytest.mark.timeout(450)
def test_callbacks_validation_freq_predict_and_evaluate(checks):
    assert checks["callback_epochs"] == [
        [0, ["input_wait", "loss"]],
        [1, ["input_wait", "loss", "val_loss"]],  # validation_freq=2
        [2, ["input_wait", "loss"]],
    ]
    assert checks["predict_diff"] < 1e-5
    assert checks["evaluate_scalar"] and checks["evaluate_diff"] < 1e-4


@pytest.mark.timeout(450)
def test_compiled_metrics_equal_single_device_keras_evaluate(checks):
    # Sample weights, an uneven last batch, and a shard with a weight-0 padding row.
    assert checks["padded_shard_rows"] == [51, 56]
    assert checks["metric_names"] == ["accuracy", "loss", "weighted_accuracy"]
    for case, diff in checks["metric_diff"].items():
        assert diff < 1e-6, case
    ours, keras_list = checks["evaluate_list"], checks["keras_list"]
    assert len(ours) == len(keras_list) == 4
    np.testing.assert_allclose(ours, keras_list, atol=1e-6)


@pytest.mark.timeout(450)
def test_fit_logs_metrics_and_class_weight_matches_keras(checks):
    assert checks["history_keys"] == [
        "accuracy",
        "input_wait",
        "loss",
        "val_accuracy",
        "val_loss",
        "val_weighted_accuracy",
        "weighted_accuracy",
    ]
    assert checks["class_weight_diff"] < 1e-6


@pytest.mark.timeout(450)
def test_mixed_precision_tracks_float32_and_keras(checks):
    losses = checks["precision_losses"]
    assert checks["float16_optimizer"] == "LossScaleOptimizer"
    for name, values in losses.items():
        assert values[0] > values[1] > values[2], name
    # Tolerances: float16 with a scale that never overflows follows float32 within 1 %;
    # bfloat16 (8 mantissa bits) within 5 %; the default scale skips the first steps
    # exactly as Keras' model.fit does (same single device), within 0.5 %.
    np.testing.assert_allclose(
        losses["mixed_float16, initial_scale=256"], losses["float32"], rtol=0.01
    )
    np.testing.assert_allclose(losses["mixed_bfloat16"], losses["float32"], rtol=0.05)
    np.testing.assert_allclose(losses["mixed_float16"], losses["keras mixed_float16"], rtol=0.005)


@pytest.mark.timeout(450)
def test_a_non_finite_step_on_one_replica_is_skipped_everywhere(checks):
    assert checks["skipped_step_weight_diff"] == 0.0
    assert checks["loss_scale_after_skip"] == 2.0**15 / 2
    assert checks["iterations_after_skip"] == 0


@pytest.mark.timeout(450)
def test_checkpoint_early_stopping_reduce_lr_and_tensorboard(checks):
    assert checks["checkpoint_predict_diff"] < 1e-6
    assert checks["early_stopping_epochs"] == [0, 1, 2]
    # Halved after epochs 1 and 2 on the template; the replicas got the value set at
    # the start of epoch 2 (the last one trained).
    np.testing.assert_allclose(checks["learning_rates"], [0.025, 0.05], rtol=1e-6)
    # Keras' runs, and the input pipeline's (parallel/tensorboard_metrics.py).
    assert checks["tensorboard_files"] == ["input", "train", "validation"]


@pytest.mark.timeout(450)
def test_input_wait_and_the_one_time_warning(checks):
    assert all(f > 0.5 for f in checks["slow_input_wait"][1:]), checks["slow_input_wait"]
    assert all(f < 0.2 for f in checks["fast_input_wait"]), checks["fast_input_wait"]
    assert len(checks["input_warnings"]) == 1
    assert "raise workers=" in checks["input_warnings"][0].lower()
    assert "print_summary(seq)" in checks["input_warnings"][0]


@pytest.mark.timeout(450)
def test_arguments_that_break_exactly_once_are_refused_with_the_reason(checks):
    refusals = checks["refusals"]
    assert "steps_per_epoch=3" in refusals["steps_per_epoch"]
    assert "untrained" in refusals["steps_per_epoch"] and "twice" in refusals["steps_per_epoch"]
    assert "Pipeline(..., shuffle=True" in refusals["shuffle"]
    assert refusals["unknown"].startswith("TypeError") and "epochz" in refusals["unknown"]
    assert "class_weight key 3 is not a class" in refusals["class_weight"]
    assert "0..2" in refusals["class_weight"]
    assert "save_freq=3" in refusals["checkpoint"]
    assert "backup_dir=" in refusals["backup_and_restore"]
    assert "not a writable directory" in refusals["backup_dir"]
    assert "metric 'last_value' cannot be aggregated across replicas" in checks["unsummable_metric"]
    assert "aggregation='mean'" in checks["unsummable_metric"]


@pytest.mark.timeout(450)
def test_multi_gpu_model_matches_the_template_and_trains_it(checks):
    assert checks["multi_gpu_predict_diff"] < 1e-6
    assert checks["multi_gpu_trains_template"] is True
    assert "gpus=2" in checks["missing_gpus_error"]
    assert "only has 0 GPU(s)" in checks["missing_gpus_error"]
    # cpu_relocation=True: the replicas share a copy of the template made on the CPU.
    relocated = checks["relocated"]
    assert relocated["device"].endswith("CPU:0") and relocated["is_a_copy"]
    assert relocated["same_weights"] == 0.0
    assert len(checks["relocation_warning"]) == 1
    assert "cpu_relocation=True) has no effect" in checks["relocation_warning"][0]


@pytest.mark.timeout(450)
def test_keras_and_tf_data_adapters(checks):
    first, second = checks["keras_fit_losses"]
    assert second < first
    assert checks["tf_signature"] == ["(None, 5)", "(None, 1)"]
    epoch_a, epoch_b = checks["tf_epochs"]
    assert [size for size, _ in epoch_a] == [16] * 6 + [7]
    assert [first_id for _, first_id in epoch_a] != [first_id for _, first_id in epoch_b]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["seed 7", "seed-none"])
def test_two_worker_processes_train_to_the_end_with_uneven_shards(tmp_path, mode):
    # With seed=None each worker draws its own seed; the trainer gives every worker the
    # chief's, so the shards are cut from one order (else samples repeat and go missing).
    outputs = [tmp_path / f"worker{index}.json" for index in range(2)]
    args = [
        sys.executable,
        "-m",
        "tests.parallel._mwms_worker",
        str(tmp_path / "worker{index}.json"),
        mode,
    ]
    procs, errors = run_workers(args, ENV, ROOT, timeout=150)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    results = [json.loads(o.read_text()) for o in outputs]
    # Each worker's shard: 52 rows (51 + 1 padding) in batches of 8, 7 steps per epoch.
    assert results[0]["steps"] == results[1]["steps"] == list(range(7)) * 2
    for epoch in ("0", "1"):
        together = results[0]["seen"][epoch] + results[1]["seen"][epoch]
        assert _exactly_once(together), epoch
    for a, b in zip(results[0]["weights"], results[1]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # synchronous replicas agree
    assert results[0]["loss"][1] < results[0]["loss"][0]
    assert results[0]["history_keys"] == ["input_wait", "loss", "mae", "mse"]
    # Metrics over both workers' padded shards equal one-device Keras evaluate.
    assert results[0]["metric_names"] == ["loss", "mae", "mse"]
    assert results[0]["metric_diff"] < 1e-6 and results[1]["metric_diff"] < 1e-6


@pytest.mark.timeout(180)
def test_workers_with_different_pipelines_raise_naming_the_field_instead_of_hanging(tmp_path):
    args = [*JOB_MWMS, str(tmp_path / "worker{index}.json"), "mismatch"]
    procs, errors = run_workers(args, ENV, ROOT, timeout=150)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    for index in range(2):
        error = json.loads((tmp_path / f"worker{index}.json").read_text())["error"]
        assert "the workers disagree on the pipeline: num_samples (per worker: [103, 102])" in (
            error
        )
