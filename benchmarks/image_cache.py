"""Decode once: an image folder through `Pipeline.cache` against decoding every epoch.

Run: ``python benchmarks/image_cache.py`` (``--n 400 --repeats 1`` for a quick look).
It uses the folder of ``benchmarks/images.py`` (``--n`` photo-like JPEGs, default 2,000,
sides 350-499 px, quality 90, 10 classes; built once under ``--cache``) and measures,
side by side, each cell in fresh processes, ``--repeats`` times (medians):

- (a) tf.data: ``decode_jpeg`` + ``resize`` to 224x224, ``num_parallel_calls=2`` (the
  reference; ``benchmarks/images.py``'s cell);
- (b) seqpipe decoding every epoch: ``ImageFiles.from_directory(root, (224, 224))`` ->
  ``Pipeline(batch_size=64, shuffle=True)`` -> ``OrderedEnqueuer``, 2 processes; and the
  same in order (``benchmarks/images.py``'s seqpipe cell), so that one run gives both
  benchmarks' figure for this loader;
- (c) seqpipe through the cache: the same pipeline ``.cache(path, n_jobs=2)``, then the
  cached pipeline (``HDF5Matrix``) through the same enqueuer; also with
  ``shuffle='batch'`` (contiguous reads) from the same file;
- (d) the time to write the cache (``n_jobs=2``, progress bar off) against one decoding
  epoch of (b), and the time to reuse a complete cache (fingerprint and open).

Images/s are for epochs 2-3 (steady state). Target: (c) with ``shuffle=True`` at least 5x
tf.data, printed as met or not met (`_common.target_line`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, target_line  # noqa: E402
from images import BATCH, PARALLELISM, SIZE, _paths, _spawn_cell, build_folder  # noqa: E402

EPOCHS = 3


def _enqueue_epochs(seq, epochs: int) -> list[float]:
    """Seconds per epoch of ``seq`` through a 2-process `OrderedEnqueuer`."""
    from seqpipe.parallel import OrderedEnqueuer

    times = []
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=PARALLELISM, max_queue_size=10)
        start = time.perf_counter()
        for _ in range(epochs):
            count = sum(len(batch[0]) for batch in enqueuer.iter_epoch())
            assert count == seq.num_samples, count
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
    return times


def run_cell(cell: str, root: str, cache_path: str) -> dict:
    """One cell in this (fresh) process."""
    from seqpipe.pipeline import Pipeline
    from seqpipe.sources import ImageFiles

    images, labels, _ = ImageFiles.from_directory(root, SIZE)
    seq = Pipeline((images, labels), batch_size=BATCH, shuffle=True, seed=0)
    if cell == "decode":
        return {"epoch_times": _enqueue_epochs(seq, EPOCHS)}
    for leftover in (cache_path, cache_path + ".partial"):
        if os.path.exists(leftover):
            os.remove(leftover)
    start = time.perf_counter()
    cached = seq.cache(cache_path, n_jobs=PARALLELISM, verbose=False)
    write = time.perf_counter() - start
    start = time.perf_counter()
    seq.cache(cache_path, n_jobs=PARALLELISM, verbose=False)
    reuse = time.perf_counter() - start
    by_batch = Pipeline(cached.sources, batch_size=BATCH, shuffle="batch", seed=0)
    return {
        "write": write,
        "reuse": reuse,
        "epoch_times": _enqueue_epochs(cached, EPOCHS),
        "batch_epoch_times": _enqueue_epochs(by_batch, EPOCHS),
    }


def _spawn(cell: str, root: str, cache_path: str) -> dict:
    cmd = [sys.executable, __file__, "--cell", cell, root, cache_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"cell {cell} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", nargs=3, metavar=("CELL", "ROOT", "CACHE_PATH"))
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default="/tmp/seqpipe-bench-images")
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(*args.cell)))
        return

    root = build_folder(args.cache, args.n)
    runs: dict[str, list[dict]] = {"tf2": [], "seqpipe": [], "decode": [], "cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache_path = os.path.join(tmp, "images.h5")
        for _ in range(args.repeats):  # interleaved, so that load drifts hit all cells
            for loader in ("tf2", "seqpipe"):  # benchmarks/images.py's cells
                run = _spawn_cell(loader, root, EPOCHS)
                if run is None:
                    raise RuntimeError(f"benchmarks/images.py's {loader} cell failed")
                runs[loader].append(run)
            runs["decode"].append(_spawn("decode", root, cache_path))
            runs["cache"].append(_spawn("cache", root, cache_path))
        megabytes = os.path.getsize(cache_path) / 1e6

    def rate(cell: str, key: str = "epoch_times") -> float:
        return statistics.median(args.n / statistics.mean(r[key][1:]) for r in runs[cell])

    def median(cell: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[cell])

    reference = rate("tf2")
    rows = [
        ["(a) tf.data decode_jpeg + resize, num_parallel_calls=2", rate("tf2")],
        ["(b) seqpipe ImageFiles, decoding every epoch, in order, 2 processes", rate("seqpipe")],
        ["(b) seqpipe ImageFiles, decoding every epoch, shuffle=True, 2 processes", rate("decode")],
        ["(c) seqpipe cached (HDF5Matrix), shuffle=True, 2 processes", rate("cache")],
        [
            "(c) seqpipe cached (HDF5Matrix), shuffle='batch', 2 processes",
            rate("cache", "batch_epoch_times"),
        ],
    ]
    jpeg_mb = sum(os.path.getsize(p) for p in _paths(root)) / 1e6
    print(
        f"{args.n} JPEGs ({jpeg_mb:.0f} MB) -> {SIZE[0]}x{SIZE[1]}x3 uint8, batches of "
        f"{BATCH}, parallelism "
        f"{PARALLELISM}; epochs 2-{EPOCHS}, medians of {args.repeats} fresh processes each"
    )
    print(
        markdown_table(
            ["loader", "images/s", "vs tf.data"],
            [[name, f"{r:,.0f}", f"{r / reference:.2f}"] for name, r in rows],
        )
    )
    print(target_line("(c) shuffle=True vs tf.data", rate("cache") / reference, ">=", 5))
    epoch = statistics.median(statistics.mean(r["epoch_times"][1:]) for r in runs["decode"])
    write, reuse = median("cache", "write"), median("cache", "reuse")
    print(f"\n(d) cache of {megabytes:.0f} MB, n_jobs={PARALLELISM}:")
    print(
        markdown_table(
            ["step", "seconds", "vs one decoding epoch (b)"],
            [
                ["one decoding epoch (b), shuffle=True", f"{epoch:.2f}", "1.00"],
                ["write the cache", f"{write:.2f}", f"{write / epoch:.2f}"],
                ["reuse a complete cache", f"{reuse:.3f}", f"{reuse / epoch:.3f}"],
            ],
        )
    )


if __name__ == "__main__":
    main()
