"""Shard benchmark: the JPEG folder of ``benchmarks/images.py`` as 8 tar shards and as 8
TFRecord files, read to 224x224x3 by loaders side by side, and GETs per shard from S3.

Run: ``python benchmarks/shards.py`` (``--n 400`` for a quick look). The ``--n`` JPEGs
(default 2,000, built once by ``images.build_folder``) are written in a shuffled order
(seeded) into 8 WebDataset shards (``.jpg`` and ``.cls`` members, by the ``webdataset``
library's writer) and 8 TFRecord files (``tf.train.Example`` with ``image`` and
``label``, by TensorFlow). Each loader then runs in a fresh process for 3 epochs,
batches of 64, two workers or parallel calls:

- ``webdataset.WebLoader`` over ``WebDataset(...).decode("pil")``, PIL bilinear
  resize, 2 workers;
- ``tf.data``: ``TFRecordDataset`` interleaved over the files, a shuffle buffer of
  1,000, ``map(parse + decode_jpeg + resize)`` with ``num_parallel_calls=2``;
- seqpipe ``WebDatasetSource`` and ``TFRecordSource`` -> ``Pipeline(shuffle=True)`` ->
  ``OrderedEnqueuer`` with 2 processes, and the same with ``shuffle="window",
  window=2``; seqpipe resizes with anti-aliasing by default (a Gaussian blur first,
  scikit-image's quality), which tf.data and PIL's bilinear do not do, so the window
  cells also run at tf.data's quality (``anti_aliasing=False``), and that is what the
  tf.data target compares.

The table shows images/s in the steady state (epochs 2-3) and in epoch 1, then the
targets as met / not met. Last, the tar shards are put in moto's S3 on 127.0.0.1 behind
the tests' counting proxy, and one reader (what one worker holding a window does) reads
2 epochs in the window order with ``chunk_cache_bytes`` = 2 shards: the GETs per shard.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, target_line  # noqa: E402
from images import BATCH, SIZE, _paths, build_folder  # noqa: E402

SHARDS = 8
WORKERS = 2
EPOCHS = 3
SHUFFLE_BUFFER = 1000
WINDOW = 2
LOADERS = {
    "webdataset.WebLoader + PIL, 2 workers": "wds",
    "tf.data TFRecordDataset, interleave, shuffle 1000, npc=2": "tf",
    "seqpipe WebDatasetSource, shuffle=True, 2 processes": "sp-wds-true",
    "seqpipe TFRecordSource, shuffle=True, 2 processes": "sp-tfr-true",
    f"seqpipe WebDatasetSource, shuffle='window', window={WINDOW}": "sp-wds-window",
    f"seqpipe TFRecordSource, shuffle='window', window={WINDOW}": "sp-tfr-window",
    f"seqpipe WebDatasetSource, window={WINDOW}, tf.data's quality": "sp-wds-window-tfq",
    f"seqpipe TFRecordSource, window={WINDOW}, tf.data's quality": "sp-tfr-window-tfq",
}


def build_shards(root: str, cache: str) -> tuple[list[str], list[str]]:
    """Writes the folder's JPEGs as tar shards and TFRecord files, once; returns both."""
    out = os.path.join(cache, f"shards-{os.path.basename(root)}")
    tars = [os.path.join(out, f"train-{k:02d}.tar") for k in range(SHARDS)]
    records = [os.path.join(out, f"train-{k:02d}.tfrecord") for k in range(SHARDS)]
    if os.path.exists(os.path.join(out, ".complete")):
        return tars, records
    import tensorflow as tf
    import webdataset as wds

    os.makedirs(out, exist_ok=True)
    paths = _paths(root)
    order = np.random.default_rng(0).permutation(len(paths))  # shuffled, as WebDataset advises
    for k in range(SHARDS):
        mine = order[k::SHARDS]
        with wds.TarWriter(tars[k]) as sink, tf.io.TFRecordWriter(records[k]) as writer:
            for i in mine:
                with open(paths[i], "rb") as file:
                    data = file.read()
                label = int(os.path.basename(os.path.dirname(paths[i])).split("_")[1])
                sink.write({"__key__": f"{i:06d}", "jpg": data, "cls": label})
                feature = {
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    open(os.path.join(out, ".complete"), "w").close()
    return tars, records


def _pil_224(image):
    from PIL import Image

    return np.asarray(image.convert("RGB").resize(SIZE[::-1], Image.Resampling.BILINEAR))


def _epochs(loader: str, tars: list[str], records: list[str]):
    """Yields one iterable of image batches per epoch (``None`` if not available)."""
    if loader == "wds":
        import webdataset as wds

        dataset = (
            wds.WebDataset(tars, shardshuffle=len(tars), nodesplitter=wds.split_by_node)
            .shuffle(SHUFFLE_BUFFER)
            .decode("pil")
            .to_tuple("jpg", "cls")
            .map_tuple(_pil_224, int)
            .batched(BATCH)
        )
        loader_ = wds.WebLoader(dataset, batch_size=None, num_workers=WORKERS)
        for _ in range(EPOCHS):
            yield (x for x, _ in loader_)
    elif loader == "tf":
        import tensorflow as tf

        spec = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        }

        def parse(record):
            example = tf.io.parse_single_example(record, spec)
            image = tf.io.decode_jpeg(example["image"], channels=3)
            return tf.cast(tf.round(tf.image.resize(image, SIZE)), tf.uint8), example["label"]

        ds = (
            tf.data.Dataset.from_tensor_slices(records)
            .shuffle(len(records))
            .interleave(tf.data.TFRecordDataset, cycle_length=WORKERS, num_parallel_calls=WORKERS)
            .shuffle(SHUFFLE_BUFFER)
            .map(parse, num_parallel_calls=WORKERS)
            .batch(BATCH)
            .prefetch(1)
        )
        for _ in range(EPOCHS):
            yield (x for x, _ in ds.as_numpy_iterator())
    else:
        from seqpipe.parallel import OrderedEnqueuer
        from seqpipe.pipeline import Pipeline
        from seqpipe.sources import TFRecordSource, WebDatasetSource

        quality = {"anti_aliasing": not loader.endswith("-tfq")}
        if "-wds-" in loader:
            decode = {"jpg": "image", "cls": "int"}
            source = WebDatasetSource(tars, decode=decode, output_shape=SIZE, **quality)
            field = "jpg"
        else:
            features = {"image": "jpeg", "label": "int64"}
            source = TFRecordSource(records, features=features, output_shape=SIZE, **quality)
            field = "image"
        if "-window" in loader:
            seq = Pipeline(source, batch_size=BATCH, shuffle="window", window=WINDOW, seed=0)
        else:
            seq = Pipeline(source, batch_size=BATCH, shuffle=True, seed=0)
        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
        enqueuer.start(workers=WORKERS, max_queue_size=10)
        for _ in range(EPOCHS):
            yield (batch[field] for batch in enqueuer.iter_epoch())
        enqueuer.stop()


def run_cell(loader: str, tars: list[str], records: list[str]) -> dict:
    """One loader in this (fresh) process: seconds per epoch and images seen."""
    if loader == "tf":
        import tensorflow as tf

        tf.constant(0)  # the runtime starts before the clock
    times, counts = [], []
    start = time.perf_counter()
    for batches in _epochs(loader, tars, records):
        if batches is None:
            return {"available": False}
        count = 0
        for x in batches:
            assert tuple(x.shape[1:]) == (*SIZE, 3), x.shape
            count += len(x)
        times.append(time.perf_counter() - start)
        counts.append(count)
        start = time.perf_counter()
    return {"available": True, "epoch_times": times, "images": counts}


def _spawn_cell(loader: str, tars: list[str], records: list[str]) -> dict | None:
    cmd = [sys.executable, __file__, "--cell", loader, json.dumps([tars, records])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.stderr.write(f"cell {loader} failed:\n{proc.stderr[-3000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _installed(loader: str) -> bool:
    # WebLoader is a PyTorch DataLoader underneath.
    modules = {"wds": ("webdataset", "torch"), "tf": ("tensorflow",)}.get(loader, ())
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        print(f"skipping {loader}: {missing} not installed (benchmarks/requirements.txt)")
    return not missing


def count_window_gets(tars: list[str], epochs: int = 2) -> tuple[list[int], int]:
    """``(most GETs of one shard in each epoch, all GETs)`` from moto's S3 when one
    reader reads ``epochs`` epochs in the window order."""
    import pickle

    sys.path.insert(0, os.path.dirname(HERE))
    from seqpipe.pipeline.window_order import WindowOrder
    from seqpipe.sources import WebDatasetSource
    from tests.sources._s3_server import S3Server

    with S3Server() as server:
        fs = server.filesystem()
        fs.create_dir("bench")
        for path in tars:
            with (
                open(path, "rb") as file,
                fs.open_output_stream(f"bench/{os.path.basename(path)}") as out,
            ):
                out.write(file.read())
        budget = WINDOW * max(os.path.getsize(p) for p in tars)
        source = WebDatasetSource(
            server.uri("bench/train-*.tar"), decode={"cls": "int"}, chunk_cache_bytes=budget
        )
        reader = pickle.loads(pickle.dumps(source))  # as a worker gets it
        most, total = [], 0
        for epoch in range(epochs):
            order = WindowOrder(reader.chunks, len(reader), WINDOW, seed=0, epoch=epoch)
            server.clear()
            for lo in range(0, len(reader), BATCH):
                reader[order[lo : lo + BATCH]]
            gets = server.gets()
            total += len(gets)
            most.append(max(collections.Counter(r.path for r in gets).values()))
        return most, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", nargs=2, metavar=("LOADER", "FILES"))
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs")
    parser.add_argument("--cache", default="/tmp/seqpipe-bench-images")
    parser.add_argument("--loaders", default=",".join(LOADERS.values()))
    args = parser.parse_args()
    if args.cell:
        loader, files = args.cell
        print(json.dumps(run_cell(loader, *json.loads(files))))
        return

    tars, records = build_shards(build_folder(args.cache, args.n), args.cache)
    wanted = args.loaders.split(",")
    results: dict[str, tuple[str, dict]] = {}
    for name, loader in LOADERS.items():
        if loader in wanted and _installed(loader):
            run = _spawn_cell(loader, tars, records)
            if run is not None:
                results[loader] = (name, run)
                print(json.dumps({loader: run}), file=sys.stderr)

    def rate(loader: str, steady: bool) -> float | None:
        run = results.get(loader, ("", {}))[1]
        if not run.get("available"):
            return None
        assert all(c == args.n for c in run["images"]), (loader, run)
        times = run["epoch_times"]
        return args.n / (np.mean(times[1:]) if steady else times[0])

    rows = []
    for loader, (name, _) in results.items():
        steady, first = rate(loader, True), rate(loader, False)
        cells = ["not available yet"] * 2 if steady is None else [f"{steady:,.0f}", f"{first:,.0f}"]
        rows.append([name, *cells])
    print(
        f"{args.n} JPEGs in {SHARDS} shards / {SHARDS} TFRecord files -> {SIZE[0]}x{SIZE[1]}x3, "
        f"batches of {BATCH}, {WORKERS} workers, {EPOCHS} epochs, one fresh process each"
    )
    print(markdown_table(["loader", "images/s, epochs 2-3", "images/s, epoch 1"], rows))

    def target(what: str, ours: str, theirs: str, factor: float) -> None:
        a, b = rate(ours, True), rate(theirs, True)
        ratio = math.nan if a is None or b is None else a / b
        print(target_line(what, ratio, ">=", factor))

    for fmt, label in (("wds", "WebDatasetSource"), ("tfr", "TFRecordSource")):
        target(
            f"seqpipe {label} window vs tf.data, same quality", f"sp-{fmt}-window-tfq", "tf", 1.0
        )
        target(f"seqpipe {label} window vs webdataset", f"sp-{fmt}-window", "wds", 2.0)
        target(f"seqpipe {label} shuffle=True vs window", f"sp-{fmt}-true", f"sp-{fmt}-window", 0.8)

    if importlib.util.find_spec("moto") is not None:
        most, total = count_window_gets(tars)
        what = (
            f"GETs from S3 (moto on 127.0.0.1), {len(most)} epochs in the window order "
            f"(window={WINDOW}, one reader)"
        )
        print(target_line(f"{what}, most per shard per epoch", max(most), "<=", 1, "", 0))
        expected = SHARDS * len(most)
        print(target_line(f"{what}, in all (shards x epochs)", total, "<=", expected, "", 0))


if __name__ == "__main__":
    main()
