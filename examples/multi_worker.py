"""Two-worker training on this machine with MultiWorkerMirroredStrategy.

Run: ``python examples/multi_worker.py``. The launcher picks two free ports on
127.0.0.1, starts this script twice with ``TF_CONFIG`` naming worker 0 and worker 1, and
waits (killing both after 120 s, so a worker that never joins cannot hang it). Each
worker reads its own shard of the pipeline (103 samples: shards of 52 and 51, evened
out with a weight-0 row) and trains in lockstep; both print their losses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np


def worker() -> None:
    # The strategy first: TensorFlow configures collective ops only at program start.
    from parallel import MultiGPUTrainer, multi_worker_strategy

    multi_worker_strategy()
    import keras

    from pipeline import Pipeline

    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 3.0, 0.5], "float32"))[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    seq = Pipeline((x, y), batch_size=8, shuffle=True, seed=0)
    history = MultiGPUTrainer(model).fit(seq, epochs=3, verbose=0)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    losses = [round(v, 4) for v in history.history["loss"]]
    print(f"worker {index}: {len(seq.shard(2, index))} steps per epoch, losses {losses}")


def launch() -> None:
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
        procs.append(subprocess.Popen([sys.executable, __file__], env=env))
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    print(f"workers exited with {codes}")
    sys.exit(max(codes))


if __name__ == "__main__":
    worker() if "TF_CONFIG" in os.environ else launch()
