"""Trainer checks run in a fresh process with 4 logical CPU devices.

``python -m tests.parallel._trainer_checks TMP_DIR`` prints one JSON object of measured
values; tests/parallel/test_trainer.py asserts on them. Logical devices must be
configured before TensorFlow initialises, hence the separate process.
"""

import json
import os
import sys
import time
import warnings

import numpy as np

DEVICES = ["/cpu:0", "/cpu:1", "/cpu:2", "/cpu:3"]


def _max_diff(a, b):
    return float(
        max(np.abs(np.asarray(u) - np.asarray(v)).max() for u, v in zip(a, b, strict=True))
    )


def _error(fn):
    try:
        fn()
    except (ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def replica_checks(out):
    import keras

    from seqpipe.parallel import MultiGPUTrainer, multi_gpu_model
    from seqpipe.pipeline import Pipeline

    from ._recording import RecordingPipeline, make_data, make_model

    x, y = make_data(103)

    def one_epoch_weights(n, cpu_merge=True):
        model = make_model()
        seq = Pipeline((x, y), batch_size=16)
        MultiGPUTrainer(model, cpu_merge=cpu_merge).fit(
            seq, devices=DEVICES[:n], epochs=1, verbose=0
        )
        return model.get_weights()

    reference = one_epoch_weights(1)
    out["max_weight_diff"] = {
        f"{n}-{merge}": _max_diff(reference, one_epoch_weights(n, merge))
        for n in (2, 3)
        for merge in (True, False)
    }

    out["losses"] = {}
    for n in (2, 3):
        seq = RecordingPipeline((x, y), batch_size=16, shuffle=True, seed=1)
        history = MultiGPUTrainer(make_model()).fit(seq, devices=DEVICES[:n], epochs=3, verbose=0)
        out["losses"][str(n)] = history.history["loss"]
        out.setdefault("seen", {})[str(n)] = seq.seen

    model = make_model()
    ends = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append([epoch, sorted(logs)])

    trainer = MultiGPUTrainer(model)
    trainer.fit(
        Pipeline((x, y), batch_size=16),
        devices=DEVICES[:3],
        epochs=3,
        validation_data=Pipeline((x[:30], y[:30]), batch_size=7),
        validation_freq=2,
        callbacks=[Record()],
        verbose=0,
    )
    out["callback_epochs"] = ends
    predicted = trainer.predict(Pipeline((x, y), batch_size=16))
    out["predict_diff"] = float(np.abs(predicted - model.predict(x, verbose=0)).max())
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    evaluated = trainer.evaluate(Pipeline((x, y), batch_size=16))
    out["evaluate_scalar"] = isinstance(evaluated, float)
    out["evaluate_diff"] = abs(evaluated - mse)

    template = make_model()
    parallel = multi_gpu_model(template, gpus=DEVICES[:3])
    out["multi_gpu_predict_diff"] = float(
        np.abs(parallel.predict(x, verbose=0) - template.predict(x, verbose=0)).max()
    )
    before = template.get_weights()[0].copy()
    parallel.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    parallel.fit(x, y, batch_size=16, epochs=1, verbose=0)
    out["multi_gpu_trains_template"] = bool(np.abs(template.get_weights()[0] - before).max() > 0)
    out["missing_gpus_error"] = _error(lambda: multi_gpu_model(template, gpus=2))
    relocated = multi_gpu_model(template, gpus=DEVICES[:2], cpu_relocation=True)
    kernel = relocated.template.weights[0]
    out["relocated"] = {
        "device": kernel.value.device,
        "is_a_copy": relocated.template is not template,
        "same_weights": _max_diff(relocated.template.get_weights(), template.get_weights()),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MultiGPUTrainer(make_model(), cpu_relocation=True)
    out["relocation_warning"] = [str(w.message) for w in caught]

    keras_model = make_model()
    seq = Pipeline((x, y), batch_size=16, shuffle=True, seed=3)
    fit = keras_model.fit(seq.as_keras(), epochs=2, verbose=0)
    out["keras_fit_losses"] = fit.history["loss"]
    dataset = Pipeline((x, y), batch_size=16, shuffle=True, seed=3).as_tf_dataset()
    out["tf_signature"] = [str(spec.shape) for spec in dataset.element_spec]
    # Each pass over the dataset is one epoch of the pipeline (a new shuffle).
    out["tf_epochs"] = [[[len(b[0]), float(b[0][0, 4])] for b in dataset] for _ in range(2)]


def metric_checks(out):
    """Compiled metrics against single-device model.evaluate, and fit's logs."""
    from seqpipe.parallel import MultiGPUTrainer
    from seqpipe.pipeline import Pipeline

    from ._recording import classes, make_classifier, make_data

    x, _ = make_data(103)
    y = classes(x)
    w = np.random.default_rng(1).uniform(0.2, 2.0, 103).astype("float32")
    model = make_classifier()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # not at chance level
    reference = model.evaluate(x, y, sample_weight=w, batch_size=16, return_dict=True, verbose=0)
    out["metric_names"] = sorted(reference)
    out["metric_diff"] = {}
    trainer = MultiGPUTrainer(model)
    for n in (2, 3):
        # 103 = 6 * 16 + 7: the last batch splits unevenly ([4, 3] and [3, 2, 2]).
        got = trainer.evaluate(
            Pipeline((x, y, w), batch_size=16), devices=DEVICES[:n], return_dict=True
        )
        out["metric_diff"][f"{n} replicas"] = max(abs(got[k] - reference[k]) for k in reference)
        # Shard 1 of 2 holds 51 samples and one weight-0 padding row.
        shard = Pipeline((x, y, w), batch_size=8, shuffle=True, seed=5).shard(2, 1)
        ids = np.concatenate(
            [
                shard.plan.batch(i, 0).indices[shard.plan.batch(i, 0).weights > 0]
                for i in range(len(shard))
            ]
        )
        expected = model.evaluate(
            x[ids], y[ids], sample_weight=w[ids], batch_size=8, return_dict=True, verbose=0
        )
        got = trainer.evaluate(shard, devices=DEVICES[:n], return_dict=True)
        out["metric_diff"][f"{n} replicas, padded shard"] = max(
            abs(got[k] - expected[k]) for k in expected
        )
    out["evaluate_list"] = trainer.evaluate(Pipeline((x, y, w), batch_size=16))
    out["keras_list"] = model.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0)
    out["padded_shard_rows"] = [len(ids), len(shard) * 8]

    # class_weight: the same weights as model.fit with class_weight on one device.
    class_weight = {0: 1.0, 1: 2.5, 2: 0.5}
    ours, keras_ref = make_classifier(), make_classifier()
    history = MultiGPUTrainer(ours).fit(
        Pipeline((x, y), batch_size=16),
        devices=DEVICES[:2],
        class_weight=class_weight,
        validation_data=Pipeline((x, y), batch_size=32),
        verbose=0,
    )
    keras_ref.fit(x, y, batch_size=16, class_weight=class_weight, shuffle=False, verbose=0)
    out["class_weight_diff"] = _max_diff(ours.get_weights(), keras_ref.get_weights())
    out["history_keys"] = sorted(history.history)


def mixed_precision_checks(out):
    import keras

    from seqpipe.parallel import MultiGPUTrainer
    from seqpipe.pipeline import Pipeline

    from ._recording import make_data, make_model

    x, y = make_data(103)

    def losses(policy, initial_scale=None, keras_fit=False, devices=DEVICES[:2]):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = make_model()
            if initial_scale:  # a scale that does not overflow at the first steps
                optimizer = keras.optimizers.LossScaleOptimizer(
                    keras.optimizers.SGD(0.05), initial_scale=initial_scale
                )
                model.compile(optimizer=optimizer, loss="mse")
            if keras_fit:
                history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
            else:
                history = MultiGPUTrainer(model).fit(
                    Pipeline((x, y), batch_size=16), devices=devices, epochs=3, verbose=0
                )
            return history.history["loss"], type(model.optimizer).__name__
        finally:
            keras.mixed_precision.set_global_policy("float32")

    out["precision_losses"] = {
        "float32": losses("float32")[0],
        "mixed_bfloat16": losses("mixed_bfloat16")[0],
        "mixed_float16, initial_scale=256": losses("mixed_float16", 256)[0],
        "keras mixed_float16": losses("mixed_float16", keras_fit=True)[0],
    }
    # Overflows at the first steps depend on per-replica gradient sizes: compare the
    # default scale with Keras on the same single device.
    out["precision_losses"]["mixed_float16"], out["float16_optimizer"] = losses(
        "mixed_float16", devices=DEVICES[:1]
    )

    # One step whose gradients overflow on the second replica only.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = make_model()
        before = model.get_weights()
        bad = x[:4].copy()
        bad[3, 0] = np.inf
        MultiGPUTrainer(model).fit(
            Pipeline((bad, y[:4]), batch_size=4), devices=DEVICES[:2], epochs=1, verbose=0
        )
        out["skipped_step_weight_diff"] = _max_diff(before, model.get_weights())
        out["loss_scale_after_skip"] = float(model.optimizer.dynamic_scale.numpy())
        out["iterations_after_skip"] = int(model.optimizer.iterations.numpy())
    finally:
        keras.mixed_precision.set_global_policy("float32")


class Slow:
    """A batch-level sequence that sleeps in ``__getitem__``: an input-bound pipeline."""

    def __init__(self, x, y, delay):
        self.x, self.y, self.delay = x, y, delay

    def __len__(self):
        return 6

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.x[index * 8 : index * 8 + 8], self.y[index * 8 : index * 8 + 8]

    def on_epoch_end(self):
        pass


def callback_checks(out, tmp):
    import keras

    from seqpipe.parallel import MultiGPUTrainer
    from seqpipe.pipeline import Pipeline

    from ._recording import classes, make_classifier, make_data

    x, _ = make_data(103)
    y = classes(x)
    seq, val = Pipeline((x, y), batch_size=16), Pipeline((x[:40], y[:40]), batch_size=16)
    model = make_classifier()
    checkpoint = os.path.join(tmp, "model.keras")
    trainer = MultiGPUTrainer(model)
    history = trainer.fit(
        seq,
        devices=DEVICES[:2],
        epochs=5,
        validation_data=val,
        callbacks=[
            keras.callbacks.ModelCheckpoint(checkpoint),
            # min_delta=1: accuracy never improves by 1 after epoch 0, so with patience=2
            # training stops after epoch 2, and the learning rate halves after 1 and 2.
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=1.0),
            keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10),
            keras.callbacks.TensorBoard(os.path.join(tmp, "logs")),
        ],
        verbose=0,
    )
    out["early_stopping_epochs"] = history.epoch
    loaded = keras.saving.load_model(checkpoint)
    out["checkpoint_predict_diff"] = float(
        np.abs(loaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    )
    out["learning_rates"] = [
        float(model.optimizer.learning_rate.numpy()),
        float(trainer._replicas.optimizer.learning_rate.numpy()),
    ]
    out["tensorboard_files"] = sorted(os.listdir(os.path.join(tmp, "logs")))

    # A model whose step outweighs reading its batch: the input is not the bottleneck.
    keras.utils.set_random_seed(0)
    heavy = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    heavy.compile(optimizer="sgd", loss="mse")
    wide = np.random.default_rng(0).normal(size=(512, 5)).astype("float32")
    history = MultiGPUTrainer(heavy).fit(
        Pipeline((wide, wide[:, :1]), batch_size=128), devices=DEVICES[:1], epochs=3, verbose=0
    )
    out["fast_input_wait"] = history.history["input_wait"][1:]

    slow = MultiGPUTrainer(make_classifier())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = slow.fit(Slow(x, y, 0.05), devices=DEVICES[:1], epochs=2, verbose=0)
    out["slow_input_wait"] = history.history["input_wait"]
    out["input_warnings"] = [str(w.message) for w in caught if "bottleneck" in str(w.message)]

    @keras.saving.register_keras_serializable("seqpipe_tests")
    class LastValue(keras.metrics.Metric):
        """Keeps the last batch's mean: a state that replicas cannot sum."""

        def __init__(self, name="last_value", **kwargs):
            super().__init__(name=name, **kwargs)
            self.value = self.add_variable((), "zeros", aggregation="mean", name="value")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value.assign(keras.ops.mean(y_pred))

        def result(self):
            return self.value

    unsummable = make_classifier(metrics=[LastValue()], weighted_metrics=None)
    out["unsummable_metric"] = _error(
        lambda: MultiGPUTrainer(unsummable).fit(seq, devices=DEVICES[:2], verbose=0)
    )

    trainer = MultiGPUTrainer(make_classifier())
    file_path = os.path.join(tmp, "a_file")
    open(file_path, "w").close()
    out["refusals"] = {
        "steps_per_epoch": _error(lambda: trainer.fit(seq, steps_per_epoch=3)),
        "shuffle": _error(lambda: trainer.fit(seq, shuffle=True)),
        "unknown": _error(lambda: trainer.fit(seq, epochz=3)),
        "class_weight": _error(lambda: trainer.fit(seq, class_weight={3: 2.0})),
        "checkpoint": _error(
            lambda: trainer.fit(
                seq, callbacks=[keras.callbacks.ModelCheckpoint("m.keras", save_freq=3)]
            )
        ),
        "backup_and_restore": _error(
            lambda: trainer.fit(seq, callbacks=[keras.callbacks.BackupAndRestore(tmp)])
        ),
        "backup_dir": _error(lambda: trainer.fit(seq, devices=DEVICES[:1], backup_dir=file_path)),
    }


def continuation_checks(out):
    """A second fit continues the optimizer; learning rates set by callbacks reach the
    replicas under every policy; models with several outputs train as model.fit does."""
    import keras
    import tensorflow as tf

    from seqpipe.parallel import MultiGPUTrainer
    from seqpipe.pipeline import Pipeline

    from ._recording import make_data, make_model

    tf.config.experimental.enable_op_determinism()
    x, y = make_data(103)

    def adam_model():
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return model

    # Two fit(epochs=1) calls against one fit(epochs=2), and model.fit then fit.
    out["second_fit_diff"] = {}
    for n in (1, 2):
        once, twice = adam_model(), adam_model()
        seq = Pipeline((x, y), batch_size=16)
        MultiGPUTrainer(once).fit(seq, devices=DEVICES[:n], epochs=2, verbose=0)
        trainer = MultiGPUTrainer(twice)
        trainer.fit(seq, devices=DEVICES[:n], epochs=1, verbose=0)
        trainer.fit(seq, devices=DEVICES[:n], epochs=2, initial_epoch=1, verbose=0)
        out["second_fit_diff"][str(n)] = _max_diff(once.get_weights(), twice.get_weights())
    keras_twice, mixed = adam_model(), adam_model()
    keras_twice.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    mixed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    MultiGPUTrainer(mixed).fit(
        Pipeline((x, y), batch_size=16), devices=DEVICES[:1], epochs=2, initial_epoch=1, verbose=0
    )
    out["after_model_fit_diff"] = _max_diff(keras_twice.get_weights(), mixed.get_weights())
    out["iterations_after"] = int(mixed.optimizer.iterations.numpy())

    # LearningRateScheduler: each epoch's rate, read from the replicas.
    out["scheduled_rates"] = {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = make_model()
            trainer = MultiGPUTrainer(model)
            seen = []

            def read_rate(epoch, logs, trainer=trainer, seen=seen):
                rate = trainer._replicas.optimizer.learning_rate.numpy()
                seen.append(round(float(rate), 6))

            read = keras.callbacks.LambdaCallback(on_epoch_end=read_rate)
            schedule = keras.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
            trainer.fit(
                Pipeline((x, y), batch_size=16),
                devices=DEVICES[:2],
                epochs=3,
                callbacks=[schedule, read],
                verbose=0,
            )
            out["scheduled_rates"][policy] = seen
        finally:
            keras.mixed_precision.set_global_policy("float32")

    # Two outputs, as a dict and as a list: the trainer on 2 replicas against model.fit.
    features = x[:, :4]
    targets = {"reg": y, "cls": (features[:, 0] > 0).astype("int64")}
    weights = np.random.default_rng(4).uniform(0.5, 2.0, 103).astype("float32")

    def two_outputs(as_dict):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((5,))
        hidden = keras.layers.Dense(8, activation="relu")(inputs[:, :4])
        reg = keras.layers.Dense(1, name="reg")(hidden)
        cls = keras.layers.Dense(2, activation="softmax", name="cls")(hidden)
        outputs = {"reg": reg, "cls": cls} if as_dict else [reg, cls]
        model = keras.Model(inputs, outputs)
        losses = {"reg": "mse", "cls": "sparse_categorical_crossentropy"}
        metrics = {"cls": ["accuracy"], "reg": ["mae"]}
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=losses if as_dict else [losses["reg"], losses["cls"]],
            loss_weights={"reg": 0.5, "cls": 2.0} if as_dict else [0.5, 2.0],
            metrics=metrics if as_dict else [metrics["reg"], metrics["cls"]],
        )
        return model

    out["two_outputs"] = {}
    for as_dict in (True, False):
        y_in = targets if as_dict else (targets["reg"], targets["cls"])
        ours, keras_ref = two_outputs(as_dict), two_outputs(as_dict)
        history = MultiGPUTrainer(ours).fit(
            Pipeline((x, y_in, weights), batch_size=16), devices=DEVICES[:2], epochs=2, verbose=0
        )
        reference = keras_ref.fit(
            x,
            y_in if as_dict else list(y_in),
            sample_weight=weights,
            batch_size=16,
            epochs=2,
            shuffle=False,
            verbose=0,
        )
        keys = sorted(k for k in reference.history)
        out["two_outputs"]["dict" if as_dict else "list"] = {
            "weight_diff": _max_diff(ours.get_weights(), keras_ref.get_weights()),
            "keys": sorted(k for k in history.history if k != "input_wait"),
            "keras_keys": keys,
            "log_diff": max(
                abs(history.history[k][e] - reference.history[k][e]) for k in keys for e in (0, 1)
            ),
        }


def main() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
    out: dict = {}
    timings = {}
    for check in (replica_checks, metric_checks, mixed_precision_checks, continuation_checks):
        start = time.perf_counter()
        check(out)
        timings[check.__name__] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    callback_checks(out, sys.argv[1])
    timings["callback_checks"] = round(time.perf_counter() - start, 1)
    out["timings"] = timings
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
