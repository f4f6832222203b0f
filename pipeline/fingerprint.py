"""What a cache of a pipeline holds, as a hash: its sources and the transforms before
the first random one (see NOTE [ Cache file protocol ] in ``pipeline/cache.py``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..transforms import Transform, TransformedSource
from .batches import DICT, TUPLE
from .config import serialize, serialize_callable
from .pipeline import Pipeline

FORMAT = "seqpipe-cache-1"  # the cache file format, part of every fingerprint


def split_transforms(seq: Pipeline) -> tuple[tuple[Transform, ...], tuple[Transform, ...]]:
    """Splits a pipeline's transforms before its first random one.

    A transform is random when its ``random`` attribute is true (`RandomTransform`,
    ``Lambda(fn, random=True)``).

    Returns:
        ``(deterministic, rest)``: the transforms the cache computes, and those the
        cached pipeline still runs on every batch.
    """
    for i, transform in enumerate(seq.transforms):
        if getattr(transform, "random", False):
            return seq.transforms[:i], seq.transforms[i:]
    return seq.transforms, ()


def _array_digest(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.hasobject:
        raise ValueError(f"an array of dtype {array.dtype} has no bytes to hash")
    data = np.ascontiguousarray(array)
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "sha256": hashlib.sha256(data.view(np.uint8).reshape(-1)).hexdigest(),
    }


def _source_config(source: Any, name: str) -> Any:
    if isinstance(source, np.ndarray):
        return {"class_name": "ndarray", "config": _array_digest(source)}
    if isinstance(source, TransformedSource):
        return {
            "class_name": "TransformedSource",
            "config": {
                "source": _source_config(source.source, name),
                "transform": serialize_callable(source.transform, f"{name}.transform"),
            },
        }
    return serialize(source, name, external_sources=False)


def fingerprint(seq: Pipeline) -> str:
    """Returns the sha256 of what a cache of ``seq`` holds: its deterministic part.

    It hashes the config of the sources and of the transforms before the first random
    one (`split_transforms`); in-memory numpy sources are hashed by their bytes. Batch
    size, shuffling, seed and sharding are not part of it: they do not change the file.
    File sources are hashed by their config (paths), not by their contents.

    Raises:
        ValueError: naming the source or transform whose config cannot be saved.

    Example:
        >>> import numpy as np
        >>> a = fingerprint(Pipeline(np.arange(4), batch_size=2))
        >>> a == fingerprint(Pipeline(np.arange(4), batch_size=3, shuffle=True))
        True
        >>> a == fingerprint(Pipeline(np.arange(1, 5), batch_size=2))
        False
    """
    deterministic, _ = split_transforms(seq)
    try:
        if seq.structure == TUPLE:
            sources: Any = [_source_config(s, str(i)) for i, s in enumerate(seq.sources)]
        elif seq.structure == DICT:
            sources = [[repr(k), _source_config(s, repr(k))] for k, s in seq.sources.items()]
        else:
            sources = _source_config(seq.sources, "0")
        transforms = [
            serialize(t, f"transform {i}", external_sources=False)
            for i, t in enumerate(deterministic)
        ]
    except ValueError as error:
        raise ValueError(
            f"cannot fingerprint {seq!r} for caching: {error}. The cache is keyed by the "
            f"config of the sources and of the transforms before the first random one, "
            f"so each must be saveable (numpy arrays, HDF5Matrix, ImageFiles, "
            f"ParquetSource, built-in transforms, importable or registered functions)"
        ) from error
    config = {"format": FORMAT, "structure": seq.structure, "sources": sources}
    config["transforms"] = transforms
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
