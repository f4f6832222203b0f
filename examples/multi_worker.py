"""Two-worker training on this machine with MultiWorkerMirroredStrategy.

Run: ``python examples/multi_worker.py``. The launcher picks two free ports on
127.0.0.1, starts this script twice with ``TF_CONFIG`` naming worker 0 and worker 1, and
waits (killing both after 120 s, so a worker that never joins cannot hang it). Each
worker reads its own shard of the pipeline (103 samples: shards of 52 and 51, evened
out with a weight-0 row) and trains in lockstep; both print their losses.

With ``--data URI`` the samples come from Parquet files under ``URI`` (``s3://``,
``gs://`` or a local directory) through `sources.ParquetSource`, and each worker fetches
only the row groups of its own shard (``shuffle='batch'``); ``--upload`` first writes
the 103 samples there. The README shows it against a local S3 server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

import numpy as np


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """The 103 samples of a linear regression: x of shape (103, 4), y of shape (103, 1)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 3.0, 0.5], "float32"))[:, None]
    return x, y


def upload(data: str) -> None:
    """Writes the samples as Parquet (row groups of 13 rows) under the URI ``data``."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    filesystem, path = pafs.FileSystem.from_uri(data)
    filesystem.create_dir(path.rstrip("/"))
    columns = {
        name: pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), a.shape[1])
        for name, a in zip("xy", make_data(), strict=True)
    }
    target = f"{path.rstrip('/')}/part-0.parquet"
    pq.write_table(pa.table(columns), target, filesystem=filesystem, row_group_size=13)


def make_pipeline(data: str | None):
    """The pipeline: in-memory samples, or Parquet rows read from ``data``."""
    from seqpipe.pipeline import Pipeline

    if data is None:
        return Pipeline(make_data(), batch_size=8, shuffle=True, seed=0)
    from seqpipe.sources import ParquetSource

    # Contiguous batches in a new order each epoch: a shard's rows are its own row groups.
    rows = (ParquetSource(data, columns="x"), ParquetSource(data, columns="y"))
    return Pipeline(rows, batch_size=8, shuffle="batch", seed=0)


def worker(data: str | None) -> None:
    # The strategy first: TensorFlow configures collective ops only at program start.
    from seqpipe.parallel import MultiGPUTrainer, multi_worker_strategy

    multi_worker_strategy()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    seq = make_pipeline(data)
    history = MultiGPUTrainer(model).fit(seq, epochs=3, verbose=0)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    losses = [round(v, 4) for v in history.history["loss"]]
    print(f"worker {index}: {len(seq.shard(2, index))} steps per epoch, losses {losses}")


def launch(data: str | None) -> None:
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        extra = [] if data is None else ["--data", data]
        procs.append(subprocess.Popen([sys.executable, __file__, *extra], env=env))
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    print(f"workers exited with {codes}")
    sys.exit(max(codes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Two-worker training on this machine.")
    parser.add_argument("--data", help="read the samples from Parquet files under this URI")
    parser.add_argument("--upload", action="store_true", help="first write them there")
    args = parser.parse_args()
    if "TF_CONFIG" in os.environ:
        worker(args.data)
    else:
        if args.upload:
            if args.data is None:
                parser.error("--upload needs --data URI")
            upload(args.data)
        launch(args.data)
