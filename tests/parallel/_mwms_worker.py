"""One worker of the two-process MultiWorkerMirroredStrategy tests (TF_CONFIG in env).

``python -m tests.parallel._mwms_worker RESULT_JSON [seed-none | mismatch]``: with
``seed-none`` every worker builds its pipeline with ``seed=None`` (each draws its own
seed); with ``mismatch`` worker 1's pipeline has one sample fewer, and the result file
holds the error ``fit`` raised.
"""

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

    mode = sys.argv[2] if len(sys.argv) > 2 else "seed 7"
    worker = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    n = 102 if mode == "mismatch" and worker == 1 else 103
    x, y = make_data(n)  # 103: the last step has 7 rows, 4 + 3 and a weight-0 row
    seed = None if mode == "seed-none" else 7
    seq = RecordingPipeline((x, y), batch_size=8, shuffle=True, seed=seed)
    model = make_model(metrics=["mae"], weighted_metrics=["mse"])
    trainer = MultiGPUTrainer(model)
    steps = []
    count = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: steps.append(batch)
    )
    if mode == "mismatch":
        try:
            trainer.fit(seq, epochs=2, verbose=0)
        except ValueError as error:
            with open(sys.argv[1], "w") as f:
                json.dump({"error": str(error)}, f)
        return
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
