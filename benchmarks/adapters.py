"""model.fit and tf.data through seqpipe's enqueuer, against the raw enqueuer.

Run: ``python benchmarks/adapters.py``. Workload "large" (200 batches of
(64, 224, 224, 3) uint8, 9.6 MB each), 2 worker processes, 3 epochs; every path runs
in a fresh process, ``--repeats`` times, interleaved; the table shows medians of the
steady state (epochs 2-3) in MB/s and the ratio to the raw enqueuer, then the targets
(``as_tf_dataset`` and ``fit(as_keras, shuffle=False)`` at >= 0.8x the raw enqueuer),
each labelled met or not met. The model's train step reads one element of the batch,
so the table measures the data path that ``model.fit`` takes (TensorFlow backend:
Keras' data adapters, tf.data, the step).
Paths:

- ``enqueuer``: ``OrderedEnqueuer(seq, use_multiprocessing=True)`` iterated directly;
- ``as_tf_dataset``: ``for batch in seq.as_tf_dataset(2, True)``;
- ``fit(as_tf_dataset)``: ``model.fit`` of that dataset;
- ``fit(as_keras, shuffle=False)``: ``model.fit(seq.as_keras(2, True), shuffle=False)``;
- ``fit(as_keras, shuffle=False, steps_per_execution=8)``: the same with a model
  compiled to run 8 steps per call;
- ``fit(as_keras)``: with Keras' default ``shuffle=True``, which ``as_keras``
  overrides (the pipeline's order, computed ahead by the workers);
- ``fit(no-op PyDataset)``: Keras' own floor: a PyDataset that returns one ready,
  64-byte aligned batch (TensorFlow takes it without a copy) and computes nothing;
- ``fit(PyDataset workers)``: with ``--keras-workers``, a plain Keras PyDataset with 2
  process workers (Keras' own enqueuer), for reference.
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

WORKERS = 2
EPOCHS = 3
PATHS = [
    "enqueuer",
    "as_tf_dataset",
    "fit(as_tf_dataset)",
    "fit(as_keras, shuffle=False)",
    "fit(as_keras, shuffle=False, steps_per_execution=8)",
    "fit(as_keras)",
    "fit(no-op PyDataset)",
]
KERAS_WORKERS = "fit(PyDataset workers)"
# The paths with a target (issue 12): steady throughput >= 0.8x the raw enqueuer.
TARGETED = ["as_tf_dataset", "fit(as_keras, shuffle=False)"]


def _tiny_step_model(steps_per_execution: int = 1):
    """A Keras model whose train step reads one element of the batch and nothing more."""
    import keras

    class ReadOnly(keras.Model):
        def train_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return {"first": keras.ops.cast(x[0, 0, 0, 0], "float32")}

    model = ReadOnly()
    model.compile(steps_per_execution=steps_per_execution)
    return model


def _noop_dataset(seq):
    """A PyDataset that returns batch 0, ready in page-aligned memory, at every index."""
    import mmap

    import keras

    batch = seq[0]
    aligned = np.frombuffer(mmap.mmap(-1, batch.nbytes), dtype=batch.dtype)
    aligned = aligned.reshape(batch.shape)
    aligned[...] = batch

    class NoOp(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=0)

        def __len__(self):
            return len(seq)

        def __getitem__(self, index):
            return (aligned,)

    return NoOp()


def _fit_epoch_times(data, shuffle: bool, steps_per_execution: int = 1) -> list[float]:
    times: list[float] = []
    model = _tiny_step_model(steps_per_execution)
    model.fit(data, epochs=EPOCHS, verbose=0, shuffle=shuffle, callbacks=[epoch_timer(times)])
    return times


def _loop_epoch_times(epochs) -> list[float]:
    times = []
    for batches in epochs:
        start = time.perf_counter()
        count = sum(1 for _ in batches)
        times.append(time.perf_counter() - start)
        assert count == 200, count
    return times


def run_path(path: str) -> list[float]:
    """Epoch times of ``path`` on the "large" workload, in this (fresh) process."""
    import warnings

    from _workloads import Workload, keras_dataset

    from seqpipe.parallel import OrderedEnqueuer

    seq = Workload("large")
    if path == "enqueuer":
        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
        enqueuer.start(workers=WORKERS, max_queue_size=10)
        try:
            return _loop_epoch_times(enqueuer.iter_epoch() for _ in range(EPOCHS))
        finally:
            enqueuer.stop()
    if path == "as_tf_dataset":
        dataset = seq.as_tf_dataset(WORKERS, True)
        return _loop_epoch_times(iter(dataset) for _ in range(EPOCHS))
    if path == "fit(as_tf_dataset)":
        return _fit_epoch_times(seq.as_tf_dataset(WORKERS, True), shuffle=False)
    if path == KERAS_WORKERS:
        return _fit_epoch_times(keras_dataset(seq), shuffle=False)
    if path == "fit(no-op PyDataset)":
        return _fit_epoch_times(_noop_dataset(seq), shuffle=False)
    shuffle = path == "fit(as_keras)"
    steps = 8 if "steps_per_execution" in path else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the out-of-order warning of shuffle=True
        with seq.as_keras(WORKERS, True) as dataset:
            return _fit_epoch_times(dataset, shuffle, steps)


def _spawn(path: str) -> list[float] | None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, __file__, "--path", path],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if proc.returncode != 0:
        sys.stderr.write(f"path {path} failed:\n{proc.stderr[-3000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--keras-workers", action="store_true", help="also time Keras' own PyDataset workers"
    )
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args.path)))
        return

    from _workloads import LARGE

    paths = PATHS + ([KERAS_WORKERS] if args.keras_workers else [])
    runs: dict[str, list[list[float]]] = {p: [] for p in paths}
    for _ in range(args.repeats):
        for path in paths:  # interleaved, so load drifts hit every path alike
            times = _spawn(path)
            if times:
                runs[path].append(times)
                print(path, [round(t, 3) for t in times], file=sys.stderr)
    num_batches, shape, dtype = LARGE
    epoch_mb = num_batches * int(np.prod(shape)) * np.dtype(dtype).itemsize / 1e6
    steady = {p: statistics.median(np.mean(t[1:]) for t in r) for p, r in runs.items() if r}
    base = steady.get("enqueuer")
    rows = [
        [
            path,
            f"{statistics.median(t[0] for t in runs[path]):.2f}",
            f"{seconds:.3f}",
            f"{epoch_mb / seconds:,.0f}",
            f"{base / seconds:.2f}" if base else "",
        ]
        for path, seconds in steady.items()
    ]
    print(
        f"'large': {num_batches} batches of {shape} {dtype} ({epoch_mb / num_batches:.1f} MB), "
        f"{WORKERS} worker processes, {EPOCHS} epochs, medians of {args.repeats} fresh "
        f"processes, steady = epochs 2-{EPOCHS}"
    )
    print(
        markdown_table(
            ["path", "epoch 1 s", "steady s/epoch", "steady MB/s", "vs the enqueuer"], rows
        )
    )
    for path in TARGETED:
        ratio = base / steady[path] if base and path in steady else float("nan")
        print(target_line(f"{path} vs the enqueuer, steady", ratio, ">=", 0.8))


if __name__ == "__main__":
    main()
