"""Every framework's training loop: Keras 3 on each backend, ``seq.as_torch()`` (with
``torch.distributed``) and ``seq.as_jax()``.

Each framework runs in fresh processes (``tests/parallel/_keras_backend_checks.py``,
``_torch_checks.py``, ``_jax_checks.py``), each doing several checks and printing what
it measured as JSON; the tests here assert on those values.
"""

import json
import os
import subprocess
import sys

import pytest

from tests._layout import ROOT

N, EPOCHS = 200, 3  # the Keras checks' samples and epochs


def run_checks(module, timeout=400, **env):
    """Runs ``python -m tests.parallel.<module>`` and returns the JSON it printed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT, **env}
    out = subprocess.run(
        [sys.executable, "-m", f"tests.parallel.{module}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


# -- Keras 3 on every backend ------------------------------------------------------------


@pytest.fixture(scope="module", params=["tensorflow", "jax", "torch"])
def keras_run(request):
    backend = request.param
    pytest.importorskip({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
    return run_checks("_keras_backend_checks", KERAS_BACKEND=backend)


@pytest.mark.timeout(500)
def test_fit_trains_the_pipelines_epoch_e_in_fit_epoch_e_exactly_once(keras_run):
    # Keras' default shuffle=True; JAX and torch read batch 0 before the first epoch.
    assert keras_run["fit_ids"] == keras_run["pipeline_ids"]
    for ids in keras_run["fit_ids"]:
        assert sorted(ids) == list(range(N))
    assert keras_run["pipeline_ids"][0] != keras_run["pipeline_ids"][1]  # reshuffled
    assert keras_run["pipeline_epoch_after_fit"] == EPOCHS


@pytest.mark.timeout(500)
def test_fit_with_steps_per_epoch_goes_on_through_the_pipelines_epoch(keras_run):
    # Keras keeps its iterator across its epochs: 2 fit epochs of 3 steps = 1 epoch.
    assert keras_run["steps_fit_ids"] == keras_run["steps_pipeline_ids"]


@pytest.mark.timeout(500)
def test_a_small_model_learns_and_history_has_the_compiled_metrics(keras_run):
    history = keras_run["history"]
    assert set(history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(values) == EPOCHS for values in history.values())
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert history["val_loss"][-1] < 0.2 * history["val_loss"][0]


@pytest.mark.timeout(500)
def test_evaluate_and_predict_read_the_pipeline_as_keras_reads_arrays(keras_run):
    assert keras_run["evaluate"] == pytest.approx(keras_run["evaluate_numpy"], rel=1e-5)
    assert keras_run["evaluate"][0] == pytest.approx(keras_run["history"]["val_loss"][-1])
    assert keras_run["predict_max_error"] < 1e-5


@pytest.mark.timeout(500)
def test_fit_with_keras_default_shuffle_is_as_fast_as_shuffle_false(keras_run):
    # Issue 21, item 9: Keras' shuffle=True used to compute batches one at a time.
    seconds = keras_run["shuffle_seconds"]
    assert seconds["shuffle=False"] / seconds["default"] >= 0.8, seconds


@pytest.mark.timeout(500)
def test_a_sharded_single_array_pipeline_gives_keras_no_weights_as_targets(keras_run):
    # Issue 21, item 8: (x, w) would be read as (x, y).
    if keras_run["backend"] == "tensorflow":
        assert "Pipeline((x, x))" in keras_run["unlabelled_shard_error"]
        return
    # Shard 1 of 2 over 5 samples, batches of 2: its slice of step 0 (ids 2 and 3), then
    # a padding row in the last step, whose one sample goes to shard 0.
    assert keras_run["unlabelled_shard"] == [
        [True, [2.0, 3.0], [1.0, 1.0]],
        [True, [4.0], [0.0]],
    ]


@pytest.mark.timeout(500)
def test_no_tensorflow_under_other_backends_and_the_trainer_says_what_to_use(keras_run):
    assert keras_run["tf_after_import_and_build"] is False
    if keras_run["backend"] == "tensorflow":
        assert keras_run["trainer_error"] is None
        return
    assert keras_run["tf_after_as_keras"] is False
    assert keras_run["tf_after_fit"] is False
    message = keras_run["trainer_error"]
    assert repr(keras_run["backend"]) in message
    assert "keras.distribution" in message and "as_keras()" in message


# -- seq.as_torch() ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_run():
    pytest.importorskip("torch")
    return run_checks("_torch_checks")


@pytest.mark.timeout(500)
def test_as_torch_yields_tensors_in_the_pipelines_structure_one_epoch_per_iter(torch_run):
    assert torch_run["len"] == 3
    assert torch_run["types"] == ["tuple", "Tensor", "Tensor"]
    assert torch_run["dtypes"] == ["torch.float32", "torch.float32"]
    assert torch_run["epoch_ids"] == torch_run["pipeline_ids"]
    assert torch_run["epoch_ids"][0] != torch_run["epoch_ids"][1]
    assert torch_run["values_match"] is True
    # A loop stopped in epoch 2: the next iter() is epoch 3, whole.
    assert torch_run["after_break"] == torch_run["pipeline_ids_epoch_3"]
    assert torch_run["dict_keys"] == [["image", "label"]] * 2
    assert torch_run["dict_values_match"] is True


@pytest.mark.timeout(500)
def test_as_torch_shares_the_workers_shared_memory_and_says_when_it_cannot_pin(torch_run):
    assert torch_run["image_in_shared_memory"] == [True, True]  # torch.from_numpy, no copy
    assert torch_run["pinned"] == [False, False]  # no CUDA here
    assert len(torch_run["pin_warnings"]) == 1
    assert "no CUDA device" in torch_run["pin_warnings"][0]


@pytest.mark.timeout(500)
def test_as_torch_resumes_mid_epoch_from_its_state_dict_exactly_once(torch_run):
    assert torch_run["resumed_epoch_1"] == torch_run["pipeline_epoch_1"]
    assert torch_run["after_resume"] == torch_run["pipeline_epoch_2"]


@pytest.mark.timeout(500)
def test_ddp_on_two_gloo_processes_trains_every_sample_once_per_epoch(torch_run):
    from tests.parallel._torch_checks import DDP_BATCH, DDP_EPOCHS, DDP_SAMPLES

    assert torch_run["ddp_exit_codes"] == [0, 0]
    ranks = torch_run["ddp"]
    assert [r["len"] for r in ranks] == [-(-DDP_SAMPLES // (2 * DDP_BATCH))] * 2
    for epoch in range(DDP_EPOCHS):
        both = ranks[0]["trained"][epoch] + ranks[1]["trained"][epoch]
        assert sorted(both) == list(range(DDP_SAMPLES))  # no sample twice, none missed
    assert ranks[0]["weights"][0] == ranks[0]["weights"][1] == ranks[1]["weights"][0]
    for rank in ranks:
        assert rank["losses"][-1] < 0.5 * rank["losses"][0]
        assert len(rank["warnings"]) == 1 and "shard='auto'" in rank["warnings"][0]


# -- seq.as_jax() ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_run():
    pytest.importorskip("jax")
    return run_checks("_jax_checks", XLA_FLAGS="--xla_force_host_platform_device_count=2")


@pytest.mark.timeout(300)
def test_as_jax_yields_jax_arrays_of_the_pipelines_batches(jax_run):
    assert jax_run["plain_types"] == ["ArrayImpl"]
    assert jax_run["plain_match"] is True


@pytest.mark.timeout(300)
def test_as_jax_with_a_sharding_gives_global_batches_a_jit_step_sees_once(jax_run):
    assert jax_run["devices"] == 2
    assert jax_run["len"] == 8
    assert jax_run["rows_match"] == [True] * 16  # the global rows are the pipeline's
    assert jax_run["layouts"] == [[True, 2, [4, 4]]]  # half the rows on each device
    assert jax_run["counts"] == [[1] * 64, [1] * 64]
    assert "drop_remainder=True" in jax_run["short_error"]


@pytest.mark.timeout(300)
def test_as_jax_in_two_processes_joins_their_shards_into_global_batches(jax_run):
    from tests.parallel._jax_checks import MP_SAMPLES

    assert jax_run["multi_process_exit_codes"] == [0, 0]
    for process in jax_run["multi_process"]:
        assert (process["processes"], process["devices"], process["len"]) == (2, 2, 3)
        assert process["rows_match"] == [True] * 3  # process 0's rows, then process 1's
        # Weighted by sample_weight, each sample counts once; padding rows count 0.
        assert process["counts"] == [1.0] * MP_SAMPLES
