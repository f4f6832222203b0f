"""Pipeline(HDF5Matrix) against raw h5py reads of the same batches, side by side.

Run: ``python benchmarks/hdf5_read.py [--rows 4096]``. Writes a chunked file of
128x128x3 uint8 images under a temp dir, then times, interleaved and repeated, one pass
over all batches of 64 with (a) raw ``dataset[a:b]`` slicing and (b) ``Pipeline`` over
``HDF5Matrix``, contiguous; and shuffled reads as raw h5py fancy indexing (sorted ids,
which h5py demands) against ``Pipeline(shuffle=True)``. Prints a markdown table of
MB/s and the ratio of times (Pipeline / raw: <= 1.1 is the target).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import markdown_table, timed

from pipeline import Pipeline
from sources import HDF5Matrix

BATCH = 64
SHAPE = (128, 128, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "images.h5")
        with h5py.File(path, "w") as f:
            dset = f.create_dataset(
                "x", shape=(args.rows, *SHAPE), dtype="uint8", chunks=(16, *SHAPE)
            )
            rng = np.random.default_rng(0)
            for lo in range(0, args.rows, 512):
                hi = min(lo + 512, args.rows)
                dset[lo:hi] = rng.integers(0, 255, (hi - lo, *SHAPE), dtype=np.uint8)
        mb = args.rows * np.prod(SHAPE) / 1e6
        raw_file = h5py.File(path, "r")
        raw = raw_file["x"]
        contiguous = Pipeline(HDF5Matrix(path, "x"), batch_size=BATCH)
        shuffled = Pipeline(HDF5Matrix(path, "x"), batch_size=BATCH, shuffle=True, seed=0)
        by_batch = Pipeline(HDF5Matrix(path, "x"), batch_size=BATCH, shuffle="batch", seed=0)
        order = shuffled.plan.epoch_order(0)

        def raw_contiguous():
            for lo in range(0, args.rows, BATCH):
                raw[lo : lo + BATCH]

        def raw_shuffled():
            for lo in range(0, args.rows, BATCH):
                raw[np.sort(order[lo : lo + BATCH])]

        def run(p):
            def one_epoch():
                for i in range(len(p)):
                    p[i]  # dropped at once, as the raw loops drop theirs

            return one_epoch

        cells = {
            "raw h5py slices": raw_contiguous,
            "Pipeline contiguous": run(contiguous),
            "Pipeline shuffle='batch'": run(by_batch),
            "raw h5py fancy (sorted ids)": raw_shuffled,
            "Pipeline shuffle=True": run(shuffled),
        }
        raw_contiguous()  # warm the page cache
        times = {name: [] for name in cells}
        names = list(cells)
        for rep in range(args.repeats):  # interleaved and rotated: noise hits every cell
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                times[name].append(timed(cells[name]))
        med = {name: float(np.median(t)) for name, t in times.items()}
        raw_file.close()
    base = {"contiguous": med["raw h5py slices"], "shuffled": med["raw h5py fancy (sorted ids)"]}
    rows = []
    for name, t in med.items():
        ref = base["shuffled"] if "fancy" in name or "True" in name else base["contiguous"]
        rows.append([name, f"{mb / t:.0f}", f"{t / ref:.2f}"])
    print(
        f"{args.rows} rows of {SHAPE} uint8 ({mb:.0f} MB), batches of {BATCH}, "
        f"median of {args.repeats}"
    )
    print(markdown_table(["reader", "MB/s", "time / raw"], rows))


if __name__ == "__main__":
    main()
