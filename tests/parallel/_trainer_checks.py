"""Trainer checks run in a fresh process with 4 logical CPU devices.

``python -m tests.parallel._trainer_checks`` prints one JSON object of measured values;
tests/parallel/test_trainer.py asserts on them. Logical devices must be configured
before TensorFlow initialises, hence the separate process.
"""

import json
import os
import sys

import numpy as np


def main() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
    import keras

    from parallel import MultiGPUTrainer, multi_gpu_model
    from pipeline import Pipeline

    from ._recording import RecordingPipeline, make_data, make_model

    x, y = make_data(103)
    devices = ["/cpu:0", "/cpu:1", "/cpu:2", "/cpu:3"]
    out: dict = {}

    def one_epoch_weights(n, cpu_merge=True):
        model = make_model()
        seq = Pipeline((x, y), batch_size=16)
        MultiGPUTrainer(model, cpu_merge=cpu_merge).fit(
            seq, devices=devices[:n], epochs=1, verbose=0
        )
        return model.get_weights()

    reference = one_epoch_weights(1)
    out["max_weight_diff"] = {
        f"{n}-{merge}": float(
            max(
                np.abs(a - b).max()
                for a, b in zip(reference, one_epoch_weights(n, merge), strict=True)
            )
        )
        for n in (2, 3)
        for merge in (True, False)
    }

    out["losses"] = {}
    for n in (2, 3):
        seq = RecordingPipeline((x, y), batch_size=16, shuffle=True, seed=1)
        history = MultiGPUTrainer(make_model()).fit(seq, devices=devices[:n], epochs=3, verbose=0)
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
        devices=devices[:3],
        epochs=2,
        validation_data=Pipeline((x[:30], y[:30]), batch_size=7),
        callbacks=[Record()],
        verbose=0,
    )
    out["callback_epochs"] = ends
    predicted = trainer.predict(Pipeline((x, y), batch_size=16))
    out["predict_diff"] = float(np.abs(predicted - model.predict(x, verbose=0)).max())
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    out["evaluate_diff"] = abs(trainer.evaluate(Pipeline((x, y), batch_size=16)) - mse)

    template = make_model()
    parallel = multi_gpu_model(template, gpus=devices[:3])
    out["multi_gpu_predict_diff"] = float(
        np.abs(parallel.predict(x, verbose=0) - template.predict(x, verbose=0)).max()
    )
    before = template.get_weights()[0].copy()
    parallel.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    parallel.fit(x, y, batch_size=16, epochs=1, verbose=0)
    out["multi_gpu_trains_template"] = bool(np.abs(template.get_weights()[0] - before).max() > 0)
    try:
        multi_gpu_model(template, gpus=2)
    except ValueError as error:
        out["missing_gpus_error"] = str(error)

    keras_model = make_model()
    seq = Pipeline((x, y), batch_size=16, shuffle=True, seed=3)
    fit = keras_model.fit(seq.as_keras(), epochs=2, verbose=0)
    out["keras_fit_losses"] = fit.history["loss"]
    dataset = Pipeline((x, y), batch_size=16, shuffle=True, seed=3).as_tf_dataset()
    out["tf_signature"] = [str(spec.shape) for spec in dataset.element_spec]
    # Each pass over the dataset is one epoch of the pipeline (a new shuffle).
    out["tf_epochs"] = [[[len(b[0]), float(b[0][0, 4])] for b in dataset] for _ in range(2)]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
