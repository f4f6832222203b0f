"""Fits with a Keras TensorBoard callback, then reads the event files back with
TensorBoard's event reader, for test_input_metrics.py (a fresh process: TensorFlow stays
out of the test runner). Writes under ``sys.argv[1]``: ``trainer/``
(MultiGPUTrainer.fit, workers=AutoWorkers(...)) and ``keras/`` (model.fit(seq.as_keras(
workers="auto"))); prints ``{run: {"input": {tag: [[step, value], ...]}, "train": [tags]},
"tf_dataset": batches of one as_tf_dataset(workers="auto") epoch}`` as JSON."""

import json
import os
import sys

import numpy as np

from seqpipe.parallel import AutoWorkers, MultiGPUTrainer
from seqpipe.pipeline import Pipeline
from seqpipe.transforms import Lambda

from ._profiled import slow_batch


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    return (Pipeline((x, y), batch_size=16, seed=0) | Lambda(slow_batch)).with_seed(0)


def _model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    return model


def main(root: str) -> None:
    import keras

    board = keras.callbacks.TensorBoard(os.path.join(root, "trainer"))
    MultiGPUTrainer(_model()).fit(
        _data(),
        epochs=2,
        workers=AutoWorkers(cpu_budget=2),
        use_multiprocessing=True,
        callbacks=[board],
        verbose=0,
    )
    board = keras.callbacks.TensorBoard(os.path.join(root, "keras"))
    with _data().as_keras(workers="auto", use_multiprocessing=True) as dataset:
        _model().fit(dataset, epochs=2, callbacks=[board], shuffle=False, verbose=0)


def read_back(root: str) -> dict:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    def reader(path):
        events = event_accumulator.EventAccumulator(path)
        events.Reload()
        return events

    found = {}
    for run in ("trainer", "keras"):
        scalars = reader(os.path.join(root, run, "input"))
        found[run] = {
            "input": {
                tag: [
                    [e.step, float(tensor_util.make_ndarray(e.tensor_proto))]
                    for e in scalars.Tensors(tag)
                ]
                for tag in scalars.Tags()["tensors"]
            },
            "train": reader(os.path.join(root, run, "train")).Tags()["tensors"],
        }
    return found


if __name__ == "__main__":
    main(sys.argv[1])
    found = read_back(sys.argv[1])
    dataset = _data().as_tf_dataset(workers="auto", use_multiprocessing=True)
    found["tf_dataset"] = sum(1 for _ in dataset)
    print(json.dumps(found))
