"""A user transform saved to JSON and loaded back under CustomObjectScope.

Run: ``python examples/custom_transform.py``. It writes a small HDF5 file, declares a
pipeline with a user-defined transform, prints its summary, saves the pipeline as JSON,
loads it back inside ``CustomObjectScope`` and checks both yield identical batches. It
also draws the pipeline to ``pipeline.png`` (or ``pipeline.dot`` without Graphviz).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

from seqpipe.pipeline import CustomObjectScope, Pipeline, plot_model, print_summary
from seqpipe.sources import HDF5Matrix
from seqpipe.transforms import Normalize, RandomTransform, Resize, ToCategorical


class RandomFlip(RandomTransform):
    """Flips each image left-right with probability ``p``.

    In a pipeline, row ``i`` of ``rng``'s draws comes from sample ``i``'s own stream,
    keyed by (seed, epoch, sample id, position among the random transforms) (NOTE [
    Augmentation keys ] in ``transforms/randomness.py``), so a sample's flip is the same
    in any worker, batch, shard and reloaded pipeline, and differs between epochs and
    between identical images.
    """

    def __init__(self, p: float = 0.5, on: int | str | None = None) -> None:
        super().__init__(on=on)
        self.p = p

    def call(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(len(x)) < self.p  # one draw per image, vectorised
        out = x.copy()
        out[flip] = out[flip, :, ::-1]
        return out

    def get_config(self) -> dict:
        return {"p": self.p, "on": self.on}


def main(out_dir: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "images.h5")
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as f:
            f["images"] = rng.integers(0, 255, (256, 40, 40, 3), dtype=np.uint8)
            f["labels"] = rng.integers(0, 10, 256)
        seq = (
            Pipeline(
                (HDF5Matrix(path, "images"), HDF5Matrix(path, "labels")),
                batch_size=32,
                shuffle=True,
                seed=1,
            )
            | Resize((32, 32), on=0)
            | RandomFlip(0.5, on=0)
            | Normalize(on=0)
            | ToCategorical(10, on=1)
        )
        print_summary(seq)
        saved = seq.to_json(indent=1)
        print(f"saved config: {len(saved)} characters of JSON")
        with CustomObjectScope({"RandomFlip": RandomFlip}):
            loaded = Pipeline.from_json(saved)
        for (x1, y1), (x2, y2) in zip(seq, loaded, strict=True):
            assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
        print(f"loaded under CustomObjectScope: {len(loaded)} identical batches")
        target = "pipeline.png" if shutil.which("dot") else "pipeline.dot"
        plot_model(seq, to_file=os.path.join(out_dir, target), show_shapes=True, dpi=60)
        print(f"plot written to {os.path.join(out_dir, target)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir())
