"""Decode once into WebDataset shards: a pipeline's deterministic part written as tar
shards, locally or in a bucket, in parallel, resumably.

NOTE [ Shard writing protocol ]
Shard ``k`` holds samples ``[k * samples_per_shard, (k + 1) * samples_per_shard)`` of the
pipeline's deterministic part (sources and transforms before the first random one,
unshuffled: ``pipeline/cache.py``). A joblib task computes one shard, builds the tar in
memory and writes it with `sources.stored_files.put_file`: locally under a temporary
name renamed into place, in a bucket as one upload that becomes visible only when
complete. So a shard exists whole or not at all, and a killed write resumes by writing
the shards that do not exist. Every shard starts with a ``__seqpipe__`` member (JSON)
(skipped by WebDataset readers, and by `sources.WebDatasetSource`, as metadata) holding
the pipeline's fingerprint, the shard number and the shard count; an existing shard
with another fingerprint or layout is never mixed in: the writer raises naming it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.checks import check_int
from ..sources.stored_files import peek_file, printable, put_file
from .cache import batch_elements, check_cacheable, deterministic_pipeline
from .fingerprint import fingerprint
from .pipeline import Pipeline

if TYPE_CHECKING:
    import pyarrow.fs as pafs

META = "__seqpipe__"
ENCODINGS = {"npy": "array", "cls": "int", "json": "json", "png": "image", "jpg": "image"}
"""Member encodings, and the `sources.WebDatasetSource` decoder that reads each back."""
_PEEK = 4096  # bytes of an existing shard read to find its metadata member


def _encode(encoding: str, value: np.ndarray, where: str) -> bytes:
    if encoding == "npy":
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()
    if encoding == "cls":
        if value.ndim != 0 or value.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: 'cls' stores one integer per sample, got {value.dtype} {value.shape}"
            )
        return str(int(value)).encode()
    if encoding == "json":
        return json.dumps(value.tolist()).encode()
    from PIL import Image  # lossless PNG, or JPEG at quality 95

    if value.dtype != np.uint8 or value.ndim not in (2, 3):
        raise ValueError(
            f"{where}: {encoding!r} stores uint8 images, got {value.dtype} {value.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(value).save(buffer, "PNG" if encoding == "png" else "JPEG", quality=95)
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0  # mtime 0: reproducible bytes
    archive.addfile(info, io.BytesIO(data))


def _write_shard(
    pipe: Pipeline,
    k: int,
    name: str,
    meta: dict[str, Any],
    extensions: list[str],
    filesystem: pafs.FileSystem | None,
) -> int:
    # A joblib task: computes shard k and writes it (NOTE [ Shard writing protocol ]).
    arrays = batch_elements(pipe[k])[2]
    first = k * meta["samples_per_shard"]
    width = len(str(meta["num_samples"] - 1))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        _add(archive, META, json.dumps({**meta, "shard": k}).encode())
        for row in range(len(arrays[0])):
            key = f"{first + row:0{width}d}"
            for extension, array in zip(extensions, arrays, strict=True):
                where = f"{printable(name)}, sample {key}, member .{extension}"
                encoding = extension.rpartition(".")[2]
                _add(archive, f"{key}.{extension}", _encode(encoding, array[row], where))
    put_file(name, buffer.getvalue(), filesystem)
    return k


def _existing_meta(name: str, filesystem: pafs.FileSystem | None) -> dict[str, Any] | None:
    """The metadata of an existing shard (``{}`` for a foreign file), or ``None``."""
    head = peek_file(name, _PEEK, filesystem)
    if head is None:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as archive:
            member = archive.next()
            if member is None or member.name != META:
                return {}
            return json.loads(archive.extractfile(member).read())
    except (tarfile.TarError, ValueError, OSError):
        return {}


def write_webdataset(
    seq: Pipeline,
    pattern: str,
    samples_per_shard: int,
    encode: Mapping[Any, str] | None = None,
    n_jobs: int = -1,
    filesystem: pafs.FileSystem | None = None,
) -> dict[str, Any]:
    """Writes a pipeline's deterministic part as WebDataset tar shards, once.

    The deterministic part (sources and transforms before the first random one) is
    computed shard by shard with `joblib.Parallel`, each task writing its own shard,
    locally or to a bucket (NOTE [ Shard writing protocol ]). A sample's key is its id,
    zero-padded; its members are its batch elements, named ``<key>.<element>.<encoding>``
    (``<key>.0.npy``, ``<key>.1.cls`` for a tuple; ``<key>.image.npy`` for a dict key).
    Shards that exist with this pipeline's fingerprint are kept: a killed write resumes.

    Args:
        seq: a `Pipeline` over sample-level sources (shuffling and sharding ignored).
        pattern: the shard names, a format string with one field for the shard number:
            ``"s3://bucket/prefix/shard-{:05d}.tar"`` (with pyarrow's query options),
            ``"gs://..."`` or a local path.
        samples_per_shard: samples per shard (the last one may hold fewer).
        encode: ``{tuple index or dict key: encoding}``: ``"npy"`` (the default, exact),
            ``"cls"`` (one integer), ``"json"``, ``"png"`` (lossless) or ``"jpg"``
            (quality 95) for uint8 images.
        n_jobs: joblib workers (``-1``: one per core; ``1``: in this process).
        filesystem: a `pyarrow.fs.FileSystem`, with ``pattern`` a path inside it.

    Returns:
        ``{"shards": [names], "decode": {extension: decoder}, "written": [numbers]}``:
        the shard names, the ``decode=`` that reads them back with
        `sources.WebDatasetSource`, and the shards this call wrote.

    Raises:
        ValueError: for a pattern without a format field, an unknown encoding, an
            existing shard written by another pipeline or with another layout (naming
            it), an element an encoding cannot store, or what `write_hdf5` refuses.
        TypeError: if ``seq`` is not a `Pipeline`.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from seqpipe.sources import WebDatasetSource
        >>> seq = Pipeline((np.arange(10.0), np.arange(10) % 3), batch_size=4)
        >>> pattern = os.path.join(tempfile.mkdtemp(), "shard-{:03d}.tar")
        >>> out = write_webdataset(seq, pattern, 4, encode={1: "cls"}, n_jobs=1)
        >>> len(out["shards"]), out["decode"]
        (3, {'0.npy': 'array', '1.cls': 'int'})
        >>> int(WebDatasetSource(out["shards"], decode=out["decode"])[5]["1.cls"])
        2
    """
    from joblib import Parallel, delayed

    check_cacheable(seq, n_jobs, "write_webdataset")
    per_shard = check_int("samples_per_shard", samples_per_shard, 1)
    if not isinstance(pattern, str) or pattern.format(0) == pattern.format(1):
        raise ValueError(
            f"pattern must name shard k with a format field, e.g. 'shard-{{:05d}}.tar'. "
            f"Received: {pattern!r}"
        )
    keys = batch_elements(deterministic_pipeline(seq, 1)[0])[1]
    encode = dict(encode or {})
    unknown = {k: e for k, e in encode.items() if k not in keys or e not in ENCODINGS}
    if unknown:
        raise ValueError(
            f"encode: {unknown} names no batch element (they are {list(keys)}) or no "
            f"encoding (they are {list(ENCODINGS)})"
        )
    extensions = [f"{key}.{encode.get(key, 'npy')}" for key in keys]
    bad = [e for e in extensions if "/" in e or e.startswith(".")]
    if bad:
        raise ValueError(f"batch elements {bad} cannot name tar members; rename them")
    num_samples = seq.num_samples
    count = -(-num_samples // per_shard)
    names = [pattern.format(k) for k in range(count)]
    meta = {
        "fingerprint": fingerprint(seq),
        "num_samples": num_samples,
        "samples_per_shard": per_shard,
        "shards": count,
        "members": extensions,
    }
    todo = []
    for k, name in enumerate(names):
        existing = _existing_meta(name, filesystem)
        if existing is None:
            todo.append(k)
        elif existing != {**meta, "shard": k}:
            raise ValueError(
                f"{printable(name)} exists but was not written by this pipeline with "
                f"samples_per_shard={per_shard} (its metadata: {existing or 'none'}); "
                f"delete it or write to another pattern"
            )
    pipe = deterministic_pipeline(seq, per_shard)
    tasks = (delayed(_write_shard)(pipe, k, names[k], meta, extensions, filesystem) for k in todo)
    written = sorted(Parallel(n_jobs=n_jobs)(tasks)) if todo else []
    decode = {e: ENCODINGS[e.rpartition(".")[2]] for e in extensions}
    return {"shards": names, "decode": decode, "written": written}
