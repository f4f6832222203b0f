"""Which files a sharded source reads: one file, a list, a glob, a brace pattern or a
directory, local or in object storage, resolved once where the source is built.

``shard-{000..007}.tar`` expands as WebDataset's URLs (and bash) do; ``*``, ``?`` and
``[...]`` match within one path component, locally and in buckets alike (a bucket is
listed once, under the pattern's longest prefix without wildcards).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._file_store import FileStore
from ._locations import Location, resolve, resolve_paths
from ._redaction import redact

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}|\{([^{}]*,[^{}]*)\}")
_WILDCARDS = re.compile(r"[*?\[]")


def expand_braces(pattern: str) -> list[str]:
    """Expands ``{a..b}`` (zero-padded as written) and ``{x,y}`` groups, left to right.

    Example:
        >>> expand_braces("s3://b/shard-{08..10}.{tar,idx}")[:3]
        ['s3://b/shard-08.tar', 's3://b/shard-08.idx', 's3://b/shard-09.tar']
    """
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if match.group(3) is not None:
        choices = match.group(3).split(",")
    else:
        first, last = match.group(1), match.group(2)
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        choices = [f"{k:0{width}d}" for k in range(int(first), int(last) + step, step)]
    return [expanded for choice in choices for expanded in expand_braces(head + choice + tail)]


def _matches(path: str, pattern: str) -> bool:
    parts, wanted = path.strip("/").split("/"), pattern.strip("/").split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True)
    )


def _glob(store: FileStore, pattern: str) -> list[pafs.FileInfo]:
    import pyarrow.fs as pafs

    if store.location.uri is None and store.location.filesystem is None:
        local = pafs.LocalFileSystem()
        return local.get_file_info(sorted(p for p in glob.glob(pattern) if os.path.isfile(p)))
    wildcard = _WILDCARDS.search(pattern)
    assert wildcard is not None  # only called for patterns
    root = pattern[: wildcard.start()].rpartition("/")[0]
    if not root.strip("/"):
        raise ValueError(
            f"the pattern {store.uri(pattern)!r} has a wildcard in its bucket name; "
            f"name the bucket, e.g. 's3://bucket/train-*.tar'"
        )
    try:
        files = store.list_files(root, recursive=True)
    except FileNotFoundError:
        files = []
    return [info for info in files if _matches(info.path, pattern)]


def list_shards(
    spec: str | os.PathLike | Sequence[str | os.PathLike],
    filesystem: pafs.FileSystem | None,
    accept: Callable[[str], bool],
    what: str,
) -> tuple[Location, list[pafs.FileInfo]]:
    """Resolves a sharded source's files and their sizes and mtimes, in reading order.

    Args:
        spec: a file, a directory (its files that ``accept`` takes, sorted by path), a
            glob or brace pattern (matches sorted by path), or a list of files; local
            paths, or URIs on one filesystem, or with ``filesystem`` paths inside it.
        filesystem: a `pyarrow.fs.FileSystem`, or ``None``.
        accept: which file names of a directory belong to the source.
        what: what the files are, for messages (``"TFRecord"``, ``"tar shard"``).

    Returns:
        ``(location, infos)``.

    Raises:
        FileNotFoundError: naming the path or pattern, if it matches no file.
        ValueError: for a malformed URI or paths on several filesystems.
    """
    if isinstance(spec, str | os.PathLike):
        items = expand_braces(os.fspath(spec))
    else:
        items = [os.fspath(p) for p in spec]
    if not items:
        raise FileNotFoundError(f"no {what} files given: pass a path, a pattern or a list")
    if len(items) > 1 or not isinstance(spec, str | os.PathLike):
        location, inner = resolve_paths(items, filesystem)
        store = FileStore(location)
        missing = store.missing(inner)
        if missing:
            raise FileNotFoundError(f"{len(missing)} {what} file(s) not found, e.g. {missing[:3]}")
        return location, _infos(store, inner)
    location, inner = resolve(items[0], filesystem)
    store = FileStore(location)
    if _WILDCARDS.search(inner):
        infos = _glob(store, inner)
        if not infos:
            raise FileNotFoundError(
                f"no {what} files match {redact(items[0])!r}; check the pattern (* and ? "
                f"match within one path component) or list the files"
            )
        return location, sorted(infos, key=lambda i: i.path)
    import pyarrow.fs as pafs

    info = store.info(inner.rstrip("/") or inner)
    if info.type == pafs.FileType.File:
        return location, [info]
    if info.type == pafs.FileType.Directory:
        infos = [i for i in store.list_files(info.path) if accept(os.path.basename(i.path))]
        if not infos:
            raise FileNotFoundError(f"no {what} files in directory {store.uri(inner)}")
        return location, infos
    raise FileNotFoundError(f"{what} path not found: {store.uri(inner)}")


def _infos(store: FileStore, inner: list[str]) -> list[pafs.FileInfo]:
    import pyarrow.fs as pafs

    if store.location.uri is None and store.location.filesystem is None:
        return pafs.LocalFileSystem().get_file_info([os.path.abspath(p) for p in inner])
    return store.call(lambda fs: fs.get_file_info(inner), inner[0])
