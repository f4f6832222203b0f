"""One worker of the two-process MultiWorkerMirroredStrategy test (TF_CONFIG in env)."""

import json
import os
import sys


def main() -> None:
    from parallel import MultiGPUTrainer, multi_worker_strategy

    from ._recording import RecordingPipeline, make_data, make_model

    multi_worker_strategy()  # before any model is built: TensorFlow's rule

    x, y = make_data(103)  # 103 = 52 + 51: uneven shards, padded with weight-0 rows
    seq = RecordingPipeline((x, y), batch_size=8, shuffle=True, seed=7)
    model = make_model()
    history = MultiGPUTrainer(model).fit(seq, epochs=2, verbose=0)
    result = {
        "seen": seq.seen,
        "loss": history.history["loss"],
        "weights": [w.tolist() for w in model.get_weights()],
    }
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
