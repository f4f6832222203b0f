"""MultiGPUTrainer on one device against plain Keras ``model.fit``, side by side.

Run: ``python benchmarks/trainer.py``. The same model (compiled with
``metrics=["accuracy"]``), pipeline and one CPU device; each cell is a fresh process,
epochs 1-3 timed, medians over ``--repeats`` runs. Prints the wall-time ratio (target
<= 1.1, labelled met or not met) and the input pipeline's share of the step time (one
epoch of the pipeline read alone, over one training epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import epoch_timer, markdown_table, target_line  # noqa: E402


def _pipeline():
    from seqpipe.pipeline import Pipeline
    from seqpipe.transforms import Normalize, ToCategorical

    rng = np.random.default_rng(0)
    x = rng.random((2048, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 2048)
    return (
        Pipeline((x, y), batch_size=64, shuffle=True, seed=0)
        | Normalize(on=0)
        | ToCategorical(10, on=1)
    )


def _model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def run_cell(name: str, epochs: int) -> dict:
    from seqpipe.parallel import MultiGPUTrainer

    seq = _pipeline()
    times: list[float] = []
    model = _model()
    if name == "keras model.fit":
        # shuffle=False: the pipeline shuffles; Keras' own shuffle would ask for batches
        # out of order, which its enqueuer cannot compute ahead.
        model.fit(
            seq.as_keras(workers=1),
            epochs=epochs,
            verbose=0,
            shuffle=False,
            callbacks=[epoch_timer(times)],
        )
    else:
        trainer = MultiGPUTrainer(model)
        trainer.fit(
            seq, devices=["/cpu:0"], epochs=epochs, verbose=0, callbacks=[epoch_timer(times)]
        )
    start = time.perf_counter()
    for i in range(len(seq)):
        seq[i]
    return {"epoch_times": times, "input_epoch": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(args.cell, 3)))
        return
    names = ["keras model.fit", "MultiGPUTrainer (1 device)"]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(args.repeats):
        for name in names:
            out = subprocess.run(
                [sys.executable, __file__, "--cell", name], capture_output=True, text=True, env=env
            )
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    steady = {}
    for name in names:
        first = statistics.median(r["epoch_times"][0] for r in runs[name])
        steady[name] = statistics.median(np.mean(r["epoch_times"][1:]) for r in runs[name])
        share = statistics.median(r["input_epoch"] for r in runs[name]) / steady[name]
        ratio = steady[name] / steady[names[0]]
        rows.append([name, f"{first:.2f}", f"{steady[name]:.2f}", f"{ratio:.2f}", f"{share:.0%}"])
    print(f"2048 samples of 32x32x3, batches of 64, one CPU device, medians of {args.repeats}")
    print(
        markdown_table(
            ["loop", "epoch 1 s", "epochs 2-3 s/epoch", "time / model.fit", "input share"], rows
        )
    )
    ratio = steady[names[1]] / steady[names[0]]
    print(target_line(f"{names[1]}, time / model.fit", ratio, "<=", 1.1))


if __name__ == "__main__":
    main()
