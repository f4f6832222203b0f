"""Pipeline over HDF5Matrix and ParquetSource against the raw libraries, side by side.

Run: ``python benchmarks/sources_read.py [--rows 4096]``. Writes an HDF5 file and a
Parquet file of the same 128x128x3 uint8 images under a temp dir, then times one pass
over all batches of 64, interleaved and rotated over ``--repeats`` rounds (medians):

- HDF5 contiguous: raw ``dataset[a:b]`` slicing vs ``Pipeline(HDF5Matrix)``;
- HDF5 shuffled: h5py fancy indexing (sorted ids, as h5py demands) vs
  ``Pipeline(HDF5Matrix, shuffle=True)``;
- Parquet contiguous: ``pyarrow.parquet.read_table`` of the file then the same rows as
  numpy batches vs ``Pipeline(ParquetSource)``;
- Parquet shuffled sample reads: ``Pipeline(ParquetSource, shuffle=True)`` and
  ``shuffle='batch'``, against the same read_table reference.

Prints MB/s and each reader's time over its reference (targets: <= 1.1 for HDF5 and
<= 1.0 for Parquet, contiguous; each labelled met or not met).

Then, unless ``--no-remote`` (or moto is missing), the bytes an epoch fetches from S3:
moto's server on 127.0.0.1 behind a logging proxy (``tests/sources/_s3_server.py``)
holds a Parquet file; one epoch of ``Pipeline(ParquetSource("s3://..."),
shuffle='batch')``, whole and as each of two shards (each shard read by a fresh
unpickled copy, as a worker or host gets it), is compared with the bytes of the row
groups its plan touches (target: fetched / plan <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import markdown_table, target_line, timed

from seqpipe.pipeline import Pipeline
from seqpipe.sources import HDF5Matrix, ParquetSource

REMOTE_ROWS, REMOTE_GROUP = 1024, 64

BATCH = 64
SHAPE = (128, 128, 3)
# Each reader's most time over its reference (issue 12), on contiguous reads.
CONTIGUOUS_TARGETS = {
    "Pipeline(HDF5Matrix) contiguous": 1.1,
    "Pipeline(ParquetSource) contiguous": 1.0,
}


def write_files(tmp: str, rows: int) -> tuple[str, str]:
    h5_path, pq_path = os.path.join(tmp, "images.h5"), os.path.join(tmp, "images.parquet")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (rows, *SHAPE), dtype=np.uint8)
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("x", data=images, chunks=(16, *SHAPE))
    flat = pa.array(images.reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(SHAPE)))
    pq.write_table(
        pa.table({"x": column}),
        pq_path,
        row_group_size=512,
        compression="none",
        use_dictionary=False,
    )
    return h5_path, pq_path


def _plan_bytes(seq: Pipeline, source: ParquetSource) -> int:
    """Bytes of the column chunks of the row groups that ``seq``'s epoch 0 touches."""
    ids = np.concatenate([seq.plan.batch(i, 0).indices for i in range(len(seq))])
    groups = np.unique(np.searchsorted(source._starts, ids, side="right") - 1)
    total = 0
    for k in groups:
        f, g = source._groups[int(k)]
        group = source._metadata[f].row_group(g)
        total += sum(
            group.column(j).total_compressed_size
            for j in range(group.num_columns)
            if group.column(j).path_in_schema.split(".")[0] in source.columns
        )
    return total


def remote_bytes(tmp: str) -> None:
    """Prints the bytes one epoch fetches from S3 (moto) against the plan's row groups."""
    import pickle

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.sources._s3_server import S3Server

    images = np.random.default_rng(1).integers(0, 255, (REMOTE_ROWS, *SHAPE), dtype=np.uint8)
    column = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), int(np.prod(SHAPE)))
    local = os.path.join(tmp, "remote.parquet")
    pq.write_table(
        pa.table({"x": column, "y": np.arange(REMOTE_ROWS)}),
        local,
        row_group_size=REMOTE_GROUP,
        compression="none",
    )
    rows = []
    ratios: dict[str, float] = {}
    with S3Server() as server:
        fs = server.filesystem()
        fs.create_dir("bench")
        with open(local, "rb") as src, fs.open_output_stream("bench/remote.parquet") as dst:
            dst.write(src.read())
        source = ParquetSource(server.uri("bench/remote.parquet"), columns="x")
        whole = Pipeline(source, batch_size=BATCH, shuffle="batch", seed=0)
        cases = [("whole epoch", whole)] + [
            (f"shard {k} of 2", whole.shard(2, k)) for k in range(2)
        ]
        for name, seq in cases:
            fresh = pickle.loads(pickle.dumps(seq))
            server.clear()
            for i in range(len(fresh)):
                fresh[i]
            gets = server.gets()
            fetched = sum(r.nbytes for r in gets)
            plan = _plan_bytes(seq, source)
            ratios[name] = fetched / plan
            rows.append(
                [
                    name,
                    len(gets),
                    f"{fetched / 1e6:.2f}",
                    f"{plan / 1e6:.2f}",
                    f"{fetched / plan:.3f}",
                ]
            )
    print(
        f"\nS3 (moto on 127.0.0.1): {REMOTE_ROWS} rows in row groups of {REMOTE_GROUP}, "
        f"shuffle='batch', batches of {BATCH}; bytes counted by the server-side proxy"
    )
    header = ["epoch", "GETs", "MB fetched", "MB of plan's row groups", "fetched / plan"]
    print(markdown_table(header, rows))
    for name, ratio in ratios.items():
        print(target_line(f"S3 {name}: fetched / plan", ratio, "<=", 1.1, digits=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-remote", action="store_true", help="skip the S3 bytes table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h5_path, pq_path = write_files(tmp, args.rows)
        mb = args.rows * np.prod(SHAPE) / 1e6
        raw = h5py.File(h5_path, "r")["x"]
        order = np.random.default_rng(0).permutation(args.rows)

        def pipeline(make_source, shuffle=False):
            def one_epoch():
                # A new source per pass: nothing decoded by an earlier pass is reused.
                p = Pipeline(make_source(), batch_size=BATCH, shuffle=shuffle, seed=0)
                for i in range(len(p)):
                    p[i]  # dropped at once, as the raw loops drop theirs

            return one_epoch

        def raw_h5_slices():
            for lo in range(0, args.rows, BATCH):
                raw[lo : lo + BATCH]

        def raw_h5_fancy():
            for lo in range(0, args.rows, BATCH):
                raw[np.sort(order[lo : lo + BATCH])]

        def raw_read_table():
            column = pq.read_table(pq_path, columns=["x"]).column("x").combine_chunks()
            images = column.flatten().to_numpy().reshape(-1, *SHAPE)
            for lo in range(0, args.rows, BATCH):
                images[lo : lo + BATCH].copy()  # a batch the consumer owns, as ours are

        def h5():
            return HDF5Matrix(h5_path, "x")

        def parquet():
            return ParquetSource(pq_path, columns="x")

        reference = {  # reader -> the reference its time is divided by
            "raw h5py slices": "raw h5py slices",
            "Pipeline(HDF5Matrix) contiguous": "raw h5py slices",
            "raw h5py fancy (sorted ids)": "raw h5py fancy (sorted ids)",
            "Pipeline(HDF5Matrix) shuffle=True": "raw h5py fancy (sorted ids)",
            "pq.read_table + numpy batches": "pq.read_table + numpy batches",
            "Pipeline(ParquetSource) contiguous": "pq.read_table + numpy batches",
            "Pipeline(ParquetSource) shuffle='batch'": "pq.read_table + numpy batches",
            "Pipeline(ParquetSource) shuffle=True": "pq.read_table + numpy batches",
        }
        cells = {
            "raw h5py slices": raw_h5_slices,
            "Pipeline(HDF5Matrix) contiguous": pipeline(h5),
            "raw h5py fancy (sorted ids)": raw_h5_fancy,
            "Pipeline(HDF5Matrix) shuffle=True": pipeline(h5, True),
            "pq.read_table + numpy batches": raw_read_table,
            "Pipeline(ParquetSource) contiguous": pipeline(parquet),
            "Pipeline(ParquetSource) shuffle='batch'": pipeline(parquet, "batch"),
            "Pipeline(ParquetSource) shuffle=True": pipeline(parquet, True),
        }
        raw_h5_slices()  # warm the page cache
        raw_read_table()
        names = list(cells)
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(args.repeats):  # interleaved and rotated: noise hits every cell
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                times[name].append(timed(cells[name]))
    med = {name: float(np.median(t)) for name, t in times.items()}
    rows = [[n, f"{mb / t:.0f}", f"{t / med[reference[n]]:.2f}"] for n, t in med.items()]
    print(
        f"{args.rows} rows of {SHAPE} uint8 ({mb:.0f} MB), batches of {BATCH}, "
        f"median of {args.repeats}"
    )
    print(markdown_table(["reader", "MB/s", "time / reference"], rows))
    for reader, bound in CONTIGUOUS_TARGETS.items():
        ratio = med[reader] / med[reference[reader]]
        print(target_line(f"{reader}, time / {reference[reader]}", ratio, "<=", bound))
    if not args.no_remote:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            print("\n(moto[server] not installed: no S3 bytes table)")
            return
        with tempfile.TemporaryDirectory() as tmp:
            remote_bytes(tmp)


if __name__ == "__main__":
    main()
