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
    # Shard 1 of 2 over 5 samples, batches of 2: ids 3 and 4, then one padding row.
    assert keras_run["unlabelled_shard"] == [
        [True, [3.0, 4.0], [1.0, 1.0]],
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
