"""An image folder as a dataset: the Keras CIFAR10Sequence example, made reusable.

Run: ``python examples/image_folder.py``. It writes a small ``root/<class>/<image>``
tree of synthetic images of different sizes (grayscale and RGB JPEGs, some stored
sideways with an EXIF orientation tag, and RGBA PNGs), reads it with
``ImageFiles.from_directory`` (OpenCV decodes the JPEGs, every image comes back upright,
RGB and resized with anti-aliasing, as uint8), and runs one shuffled epoch through two
worker processes.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from seqpipe.pipeline import Pipeline
from seqpipe.sources import ImageFiles
from seqpipe.transforms import Normalize, ToCategorical

CLASSES = {"circles": 0, "squares": 1, "stripes": 2}


def draw(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic image of one class, in a random colour mode."""
    yy, xx = np.mgrid[:size, :size]
    if kind == "circles":
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    elif kind == "squares":
        mask = (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4)
    else:
        mask = (xx // 4) % 2 == 0
    gray = np.where(mask, 220, 30).astype(np.uint8)
    mode = rng.integers(3)
    if mode == 0:
        return gray
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    return rgb if mode == 1 else np.concatenate([rgb, np.full_like(gray[..., None], 255)], -1)


def save(image: np.ndarray, path_stem: str, sideways: bool) -> None:
    """Saves RGBA as PNG, the rest as JPEG; ``sideways`` stores the pixels turned a
    quarter left with EXIF Orientation 6 ("turn right to display")."""
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 4:
        Image.fromarray(image).save(path_stem + ".png")
        return
    exif = Image.Exif()
    if sideways:
        image = np.rot90(image)
        exif[274] = 6
    Image.fromarray(np.ascontiguousarray(image)).save(path_stem + ".jpg", quality=90, exif=exif)


def main() -> None:
    from seqpipe.parallel import OrderedEnqueuer

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        for kind in CLASSES:
            os.makedirs(os.path.join(root, kind))
            for i in range(20):
                image = draw(kind, int(rng.integers(24, 48)), rng)
                save(image, os.path.join(root, kind, f"{i:03d}"), sideways=i % 4 == 0)
        images, labels, class_names = ImageFiles.from_directory(root, output_shape=(32, 32))
        print(f"{len(images)} images in {len(class_names)} classes: {class_names}")
        sideways = next(
            i
            for i, path in enumerate(images.paths)
            if "stripes" in path and path.endswith(".jpg") and int(path[-7:-4]) % 4 == 0
        )
        stripes = images[sideways].astype(float)
        # Upright again: the vertical stripes change across columns, not down them.
        assert stripes.std(axis=0).mean() < stripes.std(axis=1).mean() / 4
        print(f"{images.paths[sideways]} was stored sideways and is read upright")
        seq = (
            Pipeline((images, labels), batch_size=16, shuffle=True, seed=0)
            | Normalize(on=0)
            | ToCategorical(len(class_names), on=1)
        )
        counts = np.zeros(len(class_names), dtype=int)
        with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
            enqueuer.start(workers=2)
            for xb, yb in enqueuer.iter_epoch():
                assert xb.shape[1:] == (32, 32, 3)
                counts += yb.sum(axis=0).astype(int)
        print(f"one epoch: {len(seq)} batches, images per class {counts.tolist()}")
        assert counts.tolist() == [20, 20, 20]


if __name__ == "__main__":
    main()
