"""Small real data files for the code blocks of the docs (``tests/test_docs.py``).

A page's hidden setup block (an HTML comment holding a ``python`` block) calls these in
the page's temporary directory, so that its examples read real HDF5, Parquet, JPEG,
TFRecord and WebDataset files under the names they use. Everything is small: a page
runs in seconds.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile

import numpy as np


def images_h5(path: str = "data.h5", n: int = 256, side: int = 40, classes: int = 10) -> str:
    """``images`` (uint8, ``(n, side, side, 3)``) and ``labels`` (int64) in one HDF5 file."""
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (n, side, side, 3), np.uint8))
        f.create_dataset("labels", data=np.arange(n, dtype=np.int64) % classes)
    return path


def _jpeg(i: int, size: tuple[int, int] = (48, 64)) -> bytes:
    from PIL import Image

    ramp = np.arange(size[1])[None, :, None] * 3 + i * 7
    image = ((np.zeros((*size, 3)) + ramp) % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def photo_folder(
    root: str = "photos", classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 8
) -> str:
    """``root/<class>/<n>.jpg``: small JPEGs, ``per_class`` in each class folder."""
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for k in range(per_class):
            with open(os.path.join(root, name, f"{k:03d}.jpg"), "wb") as f:
                f.write(_jpeg(c * per_class + k))
    return root


def parquet_rows(path: str = "train.parquet", n: int = 256, rows_per_group: int = 64) -> str:
    """Columns ``image`` (fixed-size lists of 8 lists of 8 float32) and ``label`` (int64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = np.arange(n * 64, dtype=np.float32) / 64
    rows = pa.FixedSizeListArray.from_arrays(pa.array(values), 8)
    image = pa.FixedSizeListArray.from_arrays(rows, 8)
    table = pa.table({"image": image, "label": pa.array(np.arange(n) % 10)})
    pq.write_table(table, path, row_group_size=rows_per_group)
    return path


def _example(i: int) -> bytes:
    from seqpipe.sources._example_proto import example_class

    example = example_class()()
    feature = example.features.feature
    feature["image"].bytes_list.value.append(_jpeg(i))
    feature["label"].int64_list.value.append(i % 10)
    feature["emb"].float_list.value.extend((np.arange(4) + i).astype(np.float32).tolist())
    return example.SerializeToString()


def tfrecord_files(directory: str = "records", files: int = 4, per_file: int = 16) -> str:
    """``directory/train-0000k.tfrecord``: ``tf.train.Example`` records with a JPEG
    ``image``, an int64 ``label`` and four float32 values ``emb``, framed with CRCs."""
    from seqpipe.sources._tfrecord_index import masked_crc32c

    os.makedirs(directory, exist_ok=True)
    for k in range(files):
        with open(os.path.join(directory, f"train-{k:05d}.tfrecord"), "wb") as f:
            for i in range(k * per_file, (k + 1) * per_file):
                data = _example(i)
                length = struct.pack("<Q", len(data))
                f.write(length + struct.pack("<I", masked_crc32c(length)))
                f.write(data + struct.pack("<I", masked_crc32c(data)))
    return directory


def webdataset_shards(directory: str = "shards", shards: int = 4, per_shard: int = 16) -> str:
    """``directory/train-00000k.tar``: samples of a ``.jpg``, a ``.cls`` and a ``.json``."""
    os.makedirs(directory, exist_ok=True)
    for k in range(shards):
        with tarfile.open(os.path.join(directory, f"train-{k:06d}.tar"), "w") as archive:
            for i in range(k * per_shard, (k + 1) * per_shard):
                members = {
                    "jpg": _jpeg(i),
                    "cls": str(i % 10).encode(),
                    "json": json.dumps({"id": i}).encode(),
                }
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{i:06d}.{extension}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    return directory
