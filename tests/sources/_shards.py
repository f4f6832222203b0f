"""Real WebDataset tar shards for tests, written by the ``webdataset`` library itself."""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image


def jpeg(i: int, size: tuple[int, int] = (24, 32)) -> bytes:
    """A small JPEG whose pixels carry ``i`` (a gradient plus ``i``)."""
    image = np.zeros((*size, 3), np.uint8) + (np.arange(size[1], dtype=np.uint8) * 4)[None, :, None]
    buffer = io.BytesIO()
    Image.fromarray((image + i * 3).astype(np.uint8)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def sample(i: int) -> dict:
    """Sample ``i`` as WebDataset's writer takes it: a JPEG, a class, JSON and an array."""
    return {
        "__key__": f"images/{i:05d}",
        "jpg": jpeg(i),
        "cls": i % 7,
        "json": {"id": i, "caption": f"picture {i}"},
        "npy": np.arange(4, dtype=np.float32) + i,
    }


def write_shards(directory: str, per_shard: list[int], make=sample) -> list[str]:
    """Shards ``shard-000.tar``, ... with ``per_shard[k]`` samples each; returns the paths."""
    import webdataset as wds

    os.makedirs(directory, exist_ok=True)
    paths, i = [], 0
    for k, count in enumerate(per_shard):
        path = os.path.join(directory, f"shard-{k:03d}.tar")
        with wds.TarWriter(path) as sink:
            for _ in range(count):
                sink.write(make(i))
                i += 1
        paths.append(path)
    return paths


def reference(urls: list[str]) -> list[dict]:
    """Every sample as the ``webdataset`` library's own reader gives it (raw bytes)."""
    import webdataset as wds

    dataset = wds.WebDataset(urls, shardshuffle=False)
    return [
        {k: v for k, v in s.items() if k == "__key__" or not k.startswith("__")} for s in dataset
    ]


def expected_json(i: int) -> dict:
    return json.loads(json.dumps(sample(i)["json"]))
