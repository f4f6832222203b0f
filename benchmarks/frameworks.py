"""Every framework's loop fed by seqpipe, side by side with PyTorch's own DataLoader.

Run: ``python benchmarks/frameworks.py`` (``--n 400 --repeats 1`` for a quick look).
The image folder is the one of ``benchmarks/images.py`` (``--n`` photo-like JPEGs,
built once under ``--cache``), decoded and resized to 224x224x3 in batches of 64 by 2
workers. Every cell is a fresh process, run ``--repeats`` times, interleaved; the
tables show medians of the steady state (epochs 2-3 of 3), as images or MB per second
delivered to the loop:

- ``DataLoader + PIL``: ``torch.utils.data.DataLoader`` over a PIL dataset, 2 worker
  processes (``benchmarks/images.py``'s loader);
- ``enqueuer``: seqpipe's ``OrderedEnqueuer`` iterated directly (the raw enqueuer);
- ``as_torch``: ``for x, y in seq.as_torch(workers=2)``;
- ``fit(as_keras) [backend]``: ``model.fit(seq.as_keras(2, True))`` under
  ``KERAS_BACKEND=tensorflow``, ``jax`` and ``torch``, with a model whose step does
  almost nothing (it reads one pixel of each image), so the time is the data path.

The "large" rows feed 200 batches of (64, 224, 224, 3) uint8 (9.6 MB, made by
``np.full`` in the worker: ``benchmarks/_workloads.py``) to the raw enqueuer and to
``as_torch``: a copy hidden in ``as_torch`` would show there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import epoch_timer, markdown_table, target_line  # noqa: E402
from images import BATCH, PARALLELISM, SIZE, build_folder  # noqa: E402
from images import run_cell as images_cell  # noqa: E402

EPOCHS = 3
BACKENDS = ("tensorflow", "jax", "torch")
IMAGE_CELLS = ["DataLoader + PIL", "enqueuer", "as_torch"] + [
    f"fit(as_keras) [{b}]" for b in BACKENDS
]
LARGE_CELLS = ["enqueuer (large)", "as_torch (large)"]
TARGETS = [
    ("as_torch vs DataLoader + PIL, images/s", "as_torch", "DataLoader + PIL", 2.0),
    ("as_torch vs the raw enqueuer, 9.6 MB batches", "as_torch (large)", "enqueuer (large)", 0.9),
    ("Keras on JAX vs on TensorFlow", "fit(as_keras) [jax]", "fit(as_keras) [tensorflow]", 0.8),
    ("Keras on torch vs on TensorFlow", "fit(as_keras) [torch]", "fit(as_keras) [tensorflow]", 0.8),
]


def _image_pipeline(root: str):
    from seqpipe.pipeline import Pipeline
    from seqpipe.sources import ImageFiles

    images, labels, _ = ImageFiles.from_directory(root, SIZE)
    return Pipeline((images, labels), batch_size=BATCH)


def _loop_epochs(batches_per_epoch) -> dict:
    """Times epochs of a loader: ``batches_per_epoch()`` returns one epoch's iterable."""
    times, counts = [], []
    for _ in range(EPOCHS):
        start, count = time.perf_counter(), 0
        for batch in batches_per_epoch():
            count += len(batch[0])
        times.append(time.perf_counter() - start)
        counts.append(count)
    return {"epoch_times": times, "images": counts}


def _fit_epochs(seq) -> dict:
    """``model.fit(seq.as_keras(2, True))`` with a model that reads one pixel per image."""
    import keras

    inputs = keras.Input((*SIZE, 3), dtype="uint8")
    pixel = keras.layers.Lambda(lambda x: keras.ops.cast(x[:, 0, 0, :1], "float32"))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(pixel))
    model.compile("sgd", "mse")
    times: list[float] = []
    with seq.as_keras(workers=PARALLELISM, use_multiprocessing=True) as data:
        model.fit(data, epochs=EPOCHS, verbose=0, callbacks=[epoch_timer(times)])
    return {"epoch_times": times, "images": [seq.num_samples] * EPOCHS}


def run_cell(cell: str, root: str) -> dict:
    """One cell, in this (fresh) process."""
    if cell == "DataLoader + PIL":
        return images_cell("torch", root, EPOCHS)
    if cell == "enqueuer":
        return images_cell("seqpipe", root, EPOCHS)
    if cell == "as_torch":
        with _image_pipeline(root).as_torch(workers=PARALLELISM) as loader:
            return _loop_epochs(lambda: loader)
    if cell.startswith("fit(as_keras)"):
        return _fit_epochs(_image_pipeline(root))
    from _workloads import LARGE, Workload

    seq = Workload("large")
    if cell == "enqueuer (large)":
        from seqpipe.parallel import OrderedEnqueuer

        with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=PARALLELISM, max_queue_size=10)
            result = _loop_epochs(enqueuer.iter_epoch)
    else:
        # prefetch=5: 10 batches ahead in all, the enqueuer row's max_queue_size.
        with seq.as_torch(workers=PARALLELISM, prefetch=5) as loader:
            result = _loop_epochs(lambda: loader)
    per_image = math.prod(LARGE[1][1:]) / 1e6
    result["megabytes"] = [n * per_image for n in result["images"]]
    return result


def _spawn_cell(cell: str, root: str) -> dict | None:
    env = dict(os.environ)
    if cell.startswith("fit(as_keras)"):
        env["KERAS_BACKEND"] = cell.split("[")[1].rstrip("]")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, __file__, "--cell", cell, root]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        sys.stderr.write(f"cell {cell} failed:\n{proc.stderr[-3000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _steady(result: dict, key: str) -> float:
    """Units per second over epochs 2-3."""
    return sum(result[key][1:]) / sum(result["epoch_times"][1:])


def _ratio_table(median: dict[str, float], cells: list[str], unit: str, base: str) -> str:
    reference = median.get(base)
    rows = [
        [c, f"{median[c]:,.0f}", f"{median[c] / reference:.2f}" if reference else "-"]
        for c in cells
        if c in median
    ]
    return markdown_table(["loop", unit, f"vs {base}"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="JPEGs in the folder")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cell")
    parser.add_argument("--cache", default="/tmp/seqpipe-bench-images")
    parser.add_argument("--cell", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(*args.cell)))
        return
    root = build_folder(args.cache, args.n)
    rates: dict[str, list[float]] = {c: [] for c in IMAGE_CELLS + LARGE_CELLS}
    for _ in range(args.repeats):
        for cell in IMAGE_CELLS + LARGE_CELLS:
            result = _spawn_cell(cell, root)
            if result is not None:
                key = "megabytes" if cell in LARGE_CELLS else "images"
                rates[cell].append(_steady(result, key))
    median = {c: statistics.median(r) for c, r in rates.items() if r}

    print(
        f"{args.n} JPEGs -> {SIZE[0]}x{SIZE[1]}x3 uint8, batches of {BATCH}, {PARALLELISM} "
        f"workers, steady state (epochs 2-3 of {EPOCHS}), medians of {args.repeats} fresh "
        f"processes"
    )
    print(_ratio_table(median, IMAGE_CELLS, "images/s", "DataLoader + PIL"))
    print()
    print("'large': 200 batches of (64, 224, 224, 3) uint8 (9.6 MB), 2 worker processes")
    print(_ratio_table(median, LARGE_CELLS, "MB/s", "enqueuer (large)"))
    print()
    for name, cell, reference, target in TARGETS:
        # A cell that failed or whose framework is missing: "not measured".
        ratio = median.get(cell, math.nan) / median.get(reference, math.nan)
        print(target_line(name, ratio, ">=", target))


if __name__ == "__main__":
    main()
