"""Shard indexes (where each sample's bytes are), built once per file and kept.

NOTE [ Shard index cache ]
An index is a few numpy arrays per shard file (record offsets, member offsets, keys),
built by one pass over the file's headers. It is kept:

- with ``cache_dir``: in that `DiskCache`, keyed by the file's URI, size and mtime
  (atomic, one builder across processes);
- else, for a local file: next to it, as ``<file>.seqpipe-index`` (an ``.npz``),
  written atomically and rebuilt when the file's size or mtime changes; a read-only
  directory keeps the index in memory only;
- else (a remote file without ``cache_dir``): in memory only, so every new source
  object scans the file again (buckets are often shared and read-only: nothing is
  written into them).

The process that builds the source builds or loads the indexes; they travel with it to
worker processes (NOTE [ Remote files in worker processes ] in ``sources/_locations.py``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import numpy as np

from .._core.atomic_files import write_atomically
from ._disk_cache import DiskCache
from ._shard_reader import ShardReader

INDEX_SUFFIX = ".seqpipe-index"
_STAMP = "__stamp__"

Index = dict[str, np.ndarray]


def _dump(index: Index, stamp: str) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **index, **{_STAMP: np.array(stamp)})
    return buffer.getvalue()


def _load(data: bytes, stamp: str) -> Index | None:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            if str(saved[_STAMP]) != stamp:
                return None
            return {name: saved[name] for name in saved.files if name != _STAMP}
    except (OSError, ValueError, KeyError):  # a foreign or damaged file: rebuild it
        return None


def load_or_build(
    reader: ShardReader, k: int, kind: str, build: Callable[[], Index], cache: DiskCache | None
) -> Index:
    """The index of file ``k`` of ``reader``, from where it is kept or built by ``build``.

    Args:
        reader: the source's `ShardReader`.
        k: the file.
        kind: the index format and its version (``"tfrecord-1"``): an index of another
            kind or of another version of the file is rebuilt.
        build: scans the file and returns its index arrays.
        cache: the source's `DiskCache`, or ``None`` (NOTE [ Shard index cache ]).

    Returns:
        The index arrays by name.
    """
    stamp = f"{kind}:{reader.versions[k]}"
    path = reader.paths[k]
    if cache is not None:
        key = ("shard-index", kind, reader.store.location.uri or "", path, reader.versions[k])
        index = _load(cache.get(key, lambda: _dump(build(), stamp)), stamp)
        return build() if index is None else index
    if not reader.native:
        return build()
    beside = path + INDEX_SUFFIX
    try:
        with open(beside, "rb") as file:
            index = _load(file.read(), stamp)
    except OSError:
        index = None
    if index is not None:
        return index
    index = build()
    # Best effort: a read-only directory keeps the index in memory only.
    with contextlib.suppress(OSError):
        write_atomically(beside, _dump(index, stamp))
    return index
