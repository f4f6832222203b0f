"""Side-by-side loader benchmark: serial loop, seqpipe, Keras 3 PyDataset, PyTorch.

Run: ``python benchmarks/enqueuer.py``. Every cell (loader x workload) runs in a fresh
process, three times; the table shows medians of epoch 1 (start-up included) and of
epochs 2-3. Workloads: "tiny" (2000 batches of (32, 16) float32: per-batch overhead),
"large" (200 batches of (64, 224, 224, 3) uint8: MB/s), "cpu" (200 batches of ~20 ms of
GIL-holding Python: speed-up over serial), "hdf5" and "hdf5-shuffled" (a ~1 GB file,
batches of 64 128x128x3 images through Pipeline(HDF5Matrix), which the enqueuer's
workers read straight into shared memory, against a raw h5py loop when contiguous and
the serial loop when shuffled), "parquet" (the
same images, 0.15 GB, in a Parquet file through Pipeline(ParquetSource) with a 64 MB
decode cache, against ``pq.read_table`` + numpy batches). On "large", the adapters run too:
``as_tf_dataset(workers=2, use_multiprocessing=True)`` iterated eagerly, and
``model.fit(as_keras(workers=2, use_multiprocessing=True))`` with a model whose
train step does nothing, both against the raw enqueuer. It also reports the machine's
memcpy bandwidth, seqpipe's first-batch latency and the process tree's peak memory on
"large", memory over 20 epochs, and every target the issues set, labelled met or not met. Peers
that are not installed are skipped (see benchmarks/requirements.txt).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, target_line, timed  # noqa: E402

LOADERS = ["serial", "raw-h5py", "raw-pq", "seqpipe", "tf-dataset", "keras-fit", "keras", "torch"]
WORKERS = 2
IMAGE = (128, 128, 3)
# What each row's "vs reference" divides by: raw library loops for files, the raw
# enqueuer for the adapters, the serial loop elsewhere.
REFERENCE = {"hdf5": "raw-h5py", "parquet": "raw-pq"}
ADAPTER_LOADERS = ("tf-dataset", "keras-fit")


class TreeMemory:
    """Samples the summed RSS and PSS of this process and its children."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> tuple[int, int]:
        rss = pss = 0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except Exception:
                continue
            rss += info.rss
            pss += info.pss
        return rss, pss

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss, pss = self.sample()
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _sequence(workload: str, param: int, path: str | None):
    if workload.startswith("hdf5"):
        from seqpipe.pipeline import Pipeline
        from seqpipe.sources import HDF5Matrix

        shuffle = workload == "hdf5-shuffled"
        return Pipeline(HDF5Matrix(path, "x"), batch_size=64, shuffle=shuffle, seed=0)
    if workload == "parquet":
        from seqpipe.pipeline import Pipeline
        from seqpipe.sources import ParquetSource

        # A decode cache smaller than the file (as for any dataset worth streaming): every
        # epoch decodes again, as the raw read_table loop does.
        return Pipeline(ParquetSource(path, columns="x", cache_bytes=64 << 20), batch_size=64)
    from _workloads import Workload

    return Workload(workload, param)


def _fit_epochs(seq, epochs: int):
    """Yields one (already consumed) epoch per ``model.fit`` epoch, timed by a callback."""
    import keras

    class DoesNothing(keras.Model):
        # Only the input pipeline costs anything: the step returns the batch size.
        def train_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return {"rows": keras.ops.cast(keras.ops.shape(x)[0], "float32")}

    ends: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    model = DoesNothing()
    model.compile()
    start = time.perf_counter()
    dataset = seq.as_keras(workers=WORKERS, use_multiprocessing=True)
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[Clock()], shuffle=False)
    return [b - a for a, b in zip([start, *ends], ends, strict=False)]


def _epochs_of(loader: str, seq, epochs: int, first_batch: list[float]):
    """Yields one iterator per epoch for ``loader``; cleanup after the last."""
    if loader == "serial":
        for _ in range(epochs):
            yield (seq[i] for i in range(len(seq)))
            seq.on_epoch_end()
    elif loader == "seqpipe":
        from seqpipe.parallel import OrderedEnqueuer

        start = time.perf_counter()
        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
        enqueuer.start(workers=WORKERS, max_queue_size=10)
        batches = enqueuer.iter_epoch()
        first = next(batches)
        first_batch.append(time.perf_counter() - start)
        yield itertools.chain([first], batches)
        del first
        for _ in range(epochs - 1):
            yield enqueuer.iter_epoch()
        enqueuer.stop()
    elif loader == "raw-h5py":
        import h5py

        dset = h5py.File(seq.sources.datapath, "r")["x"]
        for _ in range(epochs):
            yield (dset[i * 64 : (i + 1) * 64] for i in range(len(seq)))
    elif loader == "raw-pq":
        import pyarrow.parquet as pq

        def batches():
            table = pq.read_table(seq.sources.path, columns=["x"])
            column = table.column("x").combine_chunks()
            images = column.flatten().to_numpy().reshape(-1, *IMAGE)
            for lo in range(0, len(images), 64):
                yield images[lo : lo + 64].copy()  # a batch the consumer owns, as ours are

        for _ in range(epochs):
            yield batches()
    elif loader == "tf-dataset":
        dataset = seq.as_tf_dataset(workers=WORKERS, use_multiprocessing=True)
        for _ in range(epochs):
            yield iter(dataset)
    elif loader == "keras":
        from _workloads import keras_dataset
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        adapter = PyDatasetAdapter(keras_dataset(seq), shuffle=False)
        for _ in range(epochs):
            adapter.on_epoch_begin()
            yield adapter.get_numpy_iterator()
            adapter.on_epoch_end()
    elif loader == "torch":
        from _workloads import torch_dataset
        from torch.utils.data import DataLoader

        loader_ = DataLoader(
            torch_dataset(seq), batch_size=None, num_workers=WORKERS, persistent_workers=True
        )
        for _ in range(epochs):
            yield iter(loader_)


def run_cell(loader: str, workload: str, param: int, path: str | None, epochs: int) -> dict:
    """One loader on one workload in this (fresh) process; returns timings as a dict."""
    seq = _sequence(workload, param, path)
    memory = TreeMemory() if workload == "large" else None
    first_batch: list[float] = []
    times, rss_by_epoch = [], []
    nbytes = 0
    if loader == "keras-fit":
        times = _fit_epochs(seq, epochs)
        nbytes = int(np.asarray(seq[0]).nbytes)
    epochs_iter = [] if loader == "keras-fit" else _epochs_of(loader, seq, epochs, first_batch)
    start = time.perf_counter()
    for batches in epochs_iter:
        count = 0
        for batch in batches:
            count += 1
            if count == 1 and not times:
                arr = batch[0] if isinstance(batch, tuple) else batch
                nbytes = int(np.asarray(arr).nbytes)  # numpy, torch and TF tensors alike
        times.append(time.perf_counter() - start)
        if memory is not None:
            rss_by_epoch.append(memory.sample()[0])
        start = time.perf_counter()
        assert count == len(seq), (loader, workload, count)
    result = {"epoch_times": times, "batch_bytes": nbytes, "batches": len(seq)}
    if first_batch:
        result["first_batch_s"] = first_batch[0]
    if memory is not None:
        memory.stop()
        result.update(peak_rss=memory.peak_rss, peak_pss=memory.peak_pss, rss=rss_by_epoch)
    return result


def _spawn_cell(loader, workload, param, path, epochs) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--cell",
        loader,
        workload,
        str(param),
        path or "-",
        str(epochs),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(f"cell {loader}/{workload} failed:\n{proc.stderr[-2000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _installed(loader: str) -> bool:
    module = {
        "keras": "keras",
        "torch": "torch",
        "tf-dataset": "tensorflow",
        "keras-fit": "tensorflow",
    }.get(loader)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def memcpy_bandwidth() -> float:
    src = np.ones(96 * 2**20, dtype=np.uint8)
    dst = np.empty_like(src)
    best = min(timed(lambda: np.copyto(dst, src)) for _ in range(5))
    return src.nbytes / best


def calibrate_cpu(target_s: float = 0.020) -> int:
    from _workloads import burn

    loops = 100_000
    elapsed = min(timed(lambda: burn(loops)) for _ in range(3))
    return int(loops * target_s / elapsed)


def write_h5(path: str, gigabytes: float) -> None:
    import h5py

    rows = int(gigabytes * 1e9 / np.prod(IMAGE))
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("x", (rows, *IMAGE), "uint8", chunks=(16, *IMAGE))
        block = np.random.default_rng(0).integers(0, 255, (1024, *IMAGE), dtype=np.uint8)
        for lo in range(0, rows, 1024):
            hi = min(lo + 1024, rows)
            dset[lo:hi] = block[: hi - lo]


def write_parquet(path: str, gigabytes: float) -> None:
    """Images as a fixed-size-list column, uncompressed, 512 rows per row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = int(gigabytes * 1e9 / np.prod(IMAGE))
    block = np.random.default_rng(0).integers(0, 255, (1024, *IMAGE), dtype=np.uint8)
    schema = pa.schema([("x", pa.list_(pa.uint8(), int(np.prod(IMAGE))))])
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as writer:
        for lo in range(0, rows, 1024):
            flat = pa.array(block[: min(1024, rows - lo)].reshape(-1))
            column = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(IMAGE)))
            writer.write_table(pa.table({"x": column}), row_group_size=512)


def _runs(loader: str, workload: str) -> bool:
    """Which loaders run on which workload."""
    if loader in ("keras", "torch"):
        # Peers are measured on the synthetic workloads; on files the bar is the raw
        # library loop.
        return workload in ("tiny", "large", "cpu")
    if loader == "raw-h5py":
        # Not on shuffled reads: h5py's sorted fancy indexing takes ~40 s an epoch there;
        # the bar is the serial Pipeline loop.
        return workload == "hdf5"
    if loader == "raw-pq":
        return workload == "parquet"
    if loader in ADAPTER_LOADERS:
        return workload == "large"
    return True


def _ratio(rows: list[dict], workload: str, loader: str, base: str) -> float:
    """How many times faster ``loader`` is than ``base`` (steady state), or nan."""
    by = {(r["workload"], r["loader"]): r["steady_s"] for r in rows}
    if (workload, loader) not in by or (workload, base) not in by:
        return float("nan")
    return by[(workload, base)] / by[(workload, loader)]


def print_targets(rows: list[dict], soak: dict | None) -> None:
    """Every ratio and bound issue 12 sets a target for, from this run, met or not."""
    r = functools.partial(_ratio, rows)
    print("ratios (steady state, x faster):")
    for name, value, comparison, bound in [
        ("tiny: seqpipe vs Keras processes", r("tiny", "seqpipe", "keras"), ">=", 5),
        ("tiny: seqpipe vs PyTorch", r("tiny", "seqpipe", "torch"), ">=", 15),
        ("large: seqpipe vs Keras", r("large", "seqpipe", "keras"), ">", 1),
        ("large: seqpipe vs PyTorch", r("large", "seqpipe", "torch"), ">", 1),
        ("hdf5 contiguous: seqpipe vs raw h5py", r("hdf5", "seqpipe", "raw-h5py"), ">=", 1.2),
        ("hdf5 shuffled: seqpipe vs serial", r("hdf5-shuffled", "seqpipe", "serial"), ">=", 1.1),
        ("parquet: Pipeline serial vs read_table", r("parquet", "serial", "raw-pq"), ">=", 1.0),
        ("large: as_tf_dataset vs enqueuer", r("large", "tf-dataset", "seqpipe"), ">=", 0.8),
        ("large: fit(as_keras) vs enqueuer", r("large", "keras-fit", "seqpipe"), ">=", 0.8),
    ]:
        print("  " + target_line(name, value, comparison, bound))
    # Without a target: the cpu ratio is bounded by the worker count; the other two put
    # the targeted ratios in context.
    for name, value in [
        (
            f"cpu: seqpipe vs serial ({WORKERS} workers: at most {WORKERS}x)",
            r("cpu", "seqpipe", "serial"),
        ),
        ("hdf5 contiguous: Pipeline serial vs raw h5py", r("hdf5", "serial", "raw-h5py")),
        ("parquet: seqpipe vs read_table", r("parquet", "seqpipe", "raw-pq")),
    ]:
        print(f"  {name}: {value:.2f}x")
    nan = float("nan")
    large = next((x for x in rows if (x["workload"], x["loader"]) == ("large", "seqpipe")), {})
    first = max((x["first_batch_s"] for x in rows if "first_batch_s" in x), default=nan)
    rss = soak["rss"] if soak else []
    # Flat over the epochs: the last epoch's tree RSS within 10 % of the tenth's.
    tenth = min(10, len(rss))
    growth = 100 * (rss[-1] / rss[tenth - 1] - 1) if rss else nan
    print("memory and start-up:")
    for line in [
        target_line("seqpipe first batch after start(), worst workload", first, "<", 1, " s"),
        target_line(
            "seqpipe 'large': peak tree RSS",
            large.get("peak_rss_MB", nan),
            "<=",
            400,
            " MB",
            digits=0,
        ),
        target_line(
            f"seqpipe 'large': tree RSS, epoch {len(rss)} vs {tenth}",
            growth,
            "<=",
            10,
            " %",
            digits=1,
        ),
    ]:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", nargs=5, metavar=("LOADER", "WORKLOAD", "P", "H5", "EPOCHS"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default="tiny,large,cpu,hdf5,hdf5-shuffled,parquet")
    parser.add_argument("--loaders", default=",".join(LOADERS))
    parser.add_argument("--hdf5-gb", type=float, default=1.0)
    parser.add_argument("--parquet-gb", type=float, default=0.15)
    parser.add_argument("--soak-epochs", type=int, default=20)
    args = parser.parse_args()
    if args.cell:
        loader, workload, param, path, epochs = args.cell
        path = None if path == "-" else path
        print(json.dumps(run_cell(loader, workload, int(param), path, int(epochs))))
        return

    workloads = args.workloads.split(",")
    wanted = args.loaders.split(",")
    loaders = [name for name in LOADERS if name in wanted and _installed(name)]
    skipped = sorted(set(wanted) - set(loaders))
    cpu_loops = calibrate_cpu()
    bandwidth = memcpy_bandwidth()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        h5path = os.path.join(tmp, "bench.h5")
        pqpath = os.path.join(tmp, "bench.parquet")
        if any(w.startswith("hdf5") for w in workloads):
            write_h5(h5path, args.hdf5_gb)
        if "parquet" in workloads:
            write_parquet(pqpath, args.parquet_gb)
        for workload in workloads:
            path = pqpath if workload == "parquet" else h5path
            for loader in loaders:
                if not _runs(loader, workload):
                    continue
                runs = [
                    _spawn_cell(loader, workload, cpu_loops, path, 3) for _ in range(args.repeats)
                ]
                runs = [r for r in runs if r]
                if not runs:
                    continue
                first = statistics.median(r["epoch_times"][0] for r in runs)
                steady = statistics.median(np.mean(r["epoch_times"][1:]) for r in runs)
                per_batch = steady / runs[0]["batches"]
                mbps = runs[0]["batch_bytes"] * runs[0]["batches"] / steady / 1e6
                row = {
                    "workload": workload,
                    "loader": loader,
                    "epoch1_s": first,
                    "steady_s": steady,
                    "per_batch_ms": per_batch * 1e3,
                    "MB/s": mbps,
                }
                if "peak_rss" in runs[0]:
                    row["peak_rss_MB"] = statistics.median(r["peak_rss"] for r in runs) / 1e6
                    row["peak_pss_MB"] = statistics.median(r["peak_pss"] for r in runs) / 1e6
                if "first_batch_s" in runs[0]:
                    row["first_batch_s"] = statistics.median(r["first_batch_s"] for r in runs)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
        soak = None
        if "large" in workloads and args.soak_epochs:
            soak = _spawn_cell("seqpipe", "large", 0, None, args.soak_epochs)

    table = []
    for r in rows:
        workload, loader = r["workload"], r["loader"]
        reference = "seqpipe" if loader in ADAPTER_LOADERS else REFERENCE.get(workload, "serial")
        table.append(
            [
                workload,
                loader,
                f"{r['epoch1_s']:.2f}",
                f"{r['steady_s']:.2f}",
                f"{r['per_batch_ms']:.3f}",
                f"{r['MB/s']:.0f}",
                f"{_ratio(rows, workload, loader, 'serial'):.2f}x",
                f"{_ratio(rows, workload, loader, reference):.2f}x {reference}",
                f"{r['peak_rss_MB']:.0f} / {r['peak_pss_MB']:.0f}" if "peak_rss_MB" in r else "",
            ]
        )
    print(
        f"memcpy bandwidth: {bandwidth / 1e9:.2f} GB/s; cpu batch: {cpu_loops} loops "
        f"(~20 ms); {WORKERS} workers; medians of {args.repeats} fresh processes"
    )
    if skipped:
        print(f"skipped (not installed): {', '.join(skipped)}")
    print(
        markdown_table(
            [
                "workload",
                "loader",
                "epoch 1 s",
                "epochs 2-3 s/epoch",
                "ms/batch (2-3)",
                "MB/s (2-3)",
                "vs serial (2-3)",
                "vs reference (2-3)",
                "peak RSS / PSS MB",
            ],
            table,
        )
    )
    if soak:
        rss = [x / 1e6 for x in soak["rss"]]
        print(
            f"seqpipe 'large' over {len(rss)} epochs, tree RSS after epochs 1/10/last: "
            f"{rss[0]:.0f} / {rss[min(9, len(rss) - 1)]:.0f} / {rss[-1]:.0f} MB"
        )
    print_targets(rows, soak)


if __name__ == "__main__":
    main()
