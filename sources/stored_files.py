"""Whole files put to and peeked at in a local directory or a bucket: the writers' side of
the filesystem layer (``sources/_locations.py``, ``sources/_file_store.py``), for
`pipeline.write_webdataset`.

A file appears whole or not at all: a local file is written under a temporary name in
its directory and renamed; an object is uploaded by one output stream, which S3 and GCS
make visible only once it is complete (one PUT, or a multipart upload completed at
close). Requests are retried like reads (`FileStore.call`), and errors name the file
without credentials.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._core.atomic_files import write_atomically
from ._file_store import FileStore, version_of
from ._locations import resolve
from ._redaction import redact

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def printable(path_or_uri: str) -> str:
    """``path_or_uri`` as messages may show it: credentials removed.

    Example:
        >>> printable("s3://KEY:SECRET@bucket/shard-0.tar")
        's3://***@bucket/shard-0.tar'
    """
    return redact(path_or_uri)


def put_file(path_or_uri: str, data: bytes, filesystem: pafs.FileSystem | None = None) -> None:
    """Writes ``data`` to ``path_or_uri`` so that it appears complete or not at all.

    Args:
        path_or_uri: a local path (its directory is created) or a URI.
        data: the file's bytes.
        filesystem: a `pyarrow.fs.FileSystem`, with ``path_or_uri`` a path inside it.

    Raises:
        PermissionError: naming the file, if writing is denied.
        OSError: naming the file, for other failures (after retries).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a", "x.bin")
        >>> put_file(path, b"abc"); open(path, "rb").read()
        b'abc'
    """
    location, inner = resolve(path_or_uri, filesystem)
    if location.filesystem is None and location.is_local:
        os.makedirs(os.path.dirname(inner), exist_ok=True)
        write_atomically(inner, data)
        return

    def put(fs: pafs.FileSystem) -> None:
        with fs.open_output_stream(inner) as stream:
            stream.write(data)

    FileStore(location).call(put, inner)


def peek_file(
    path_or_uri: str, nbytes: int, filesystem: pafs.FileSystem | None = None
) -> bytes | None:
    """The first ``nbytes`` bytes of a file (all of a shorter one), or ``None`` if it is
    missing.

    Raises:
        PermissionError: naming the file, if reading is denied.

    Example:
        >>> peek_file(__file__, 8)[3:], peek_file(__file__ + ".missing", 8)
        (b'Whole', None)
    """
    import pyarrow.fs as pafs

    location, inner = resolve(path_or_uri, filesystem)
    store = FileStore(location)
    info = store.info(inner)
    if info.type != pafs.FileType.File:
        return None
    return store.read_range(inner, 0, min(nbytes, info.size), version_of(info))
