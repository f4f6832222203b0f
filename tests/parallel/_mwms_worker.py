"""One worker of the two-process MultiWorkerMirroredStrategy test (TF_CONFIG in env)."""

import json
import os
import sys

import numpy as np


def main() -> None:
    from seqpipe.parallel import MultiGPUTrainer, multi_worker_strategy

    multi_worker_strategy()  # before any model is built: TensorFlow's rule

    import keras

    from seqpipe.pipeline import Pipeline

    from ._recording import RecordingPipeline, make_data, make_model

    x, y = make_data(103)  # 103 = 52 + 51: uneven shards, padded with weight-0 rows
    seq = RecordingPipeline((x, y), batch_size=8, shuffle=True, seed=7)
    model = make_model(metrics=["mae"], weighted_metrics=["mse"])
    trainer = MultiGPUTrainer(model)
    steps = []
    count = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: steps.append(batch)
    )
    history = trainer.fit(seq, epochs=2, verbose=0, callbacks=[count])
    # Each worker evaluates its own padded shard; the totals are summed across workers.
    w = np.random.default_rng(2).uniform(0.2, 2.0, 103).astype("float32")
    ours = trainer.evaluate(Pipeline((x, y, w), batch_size=8), return_dict=True)
    reference = model.evaluate(x, y, sample_weight=w, batch_size=8, return_dict=True, verbose=0)
    result = {
        "seen": seq.seen,
        "loss": history.history["loss"],
        "steps": steps,
        "history_keys": sorted(history.history),
        "weights": [w.tolist() for w in model.get_weights()],
        "metric_diff": max(abs(ours[k] - reference[k]) for k in reference),
        "metric_names": sorted(ours),
    }
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
