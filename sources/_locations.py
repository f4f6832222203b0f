"""Where a source's files are: a `Location` (a URI or a pyarrow filesystem), and how a
user's path, URI or ``filesystem=`` argument resolves to one and a path inside it.

NOTE [ Remote files in worker processes ]
A source names its storage by a `Location`: the URI it was given (``s3://bucket/prefix``,
``gs://...``, with pyarrow's query options) or the `pyarrow.fs.FileSystem` object it was
handed. Only that description is pickled: a worker process (fork or spawn) opens its own
filesystem the first time it reads, so no connection crosses a process boundary, and a
URI-built filesystem carries no credentials (pyarrow resolves them again in each process
from the environment: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE``,
``~/.aws``, instance metadata; for GCS ``GOOGLE_APPLICATION_CREDENTIALS`` and the
default credentials). Listings and Parquet footers are read once, by the process that
builds the source, and travel with it.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._redaction import redact

if TYPE_CHECKING:
    # pyarrow is imported where it is used: local image files are read with open(),
    # and a worker that unpickles an `ImageFiles` should not pay 0.1 s for pyarrow.
    import pyarrow.fs as pafs

# What pyarrow.fs.FileSystem.from_uri understands (HDFS needs a JVM at read time).
SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs")
_BUCKET_SCHEMES = ("s3", "gs", "gcs")  # the bucket is the first part of the inner path


def is_uri(path: Any) -> bool:
    """True for strings of the form ``scheme://...`` (not Windows drive letters)."""
    return isinstance(path, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", path) is not None


@dataclass(frozen=True)
class Location:
    """A picklable description of a filesystem: a URI, or a filesystem object.

    Attributes:
        uri: the URI the filesystem is built from (``None`` when an object was given);
            the path part is irrelevant, the scheme, host and query options count.
        filesystem: the `pyarrow.fs.FileSystem` given, or ``None``.
    """

    uri: str | None = None
    filesystem: pafs.FileSystem | None = None

    @property
    def is_local(self) -> bool:
        """True when the files are on the local disk (read natively, never cached)."""
        if self.filesystem is not None:
            import pyarrow.fs as pafs

            return isinstance(self.filesystem, pafs.LocalFileSystem)
        return self.uri is None or self.uri.startswith("file://")

    def open(self) -> pafs.FileSystem:
        """This process's filesystem handle (opened on first use after fork/spawn)."""
        opened = self.__dict__.get("_opened")
        if opened is None or opened[0] != os.getpid():
            import pyarrow.fs as pafs

            if self.filesystem is not None:
                # A copy per process: pyarrow rebuilds it from its options, with a new
                # client (NOTE [ Remote files in worker processes ]).
                handle = pickle.loads(pickle.dumps(self.filesystem))
            elif self.uri is None:
                handle = pafs.LocalFileSystem()
            else:
                handle = pafs.FileSystem.from_uri(self.uri)[0]
            opened = (os.getpid(), handle)
            object.__setattr__(self, "_opened", opened)  # a cache, not a field
        return opened[1]

    def inner_of(self, path: str) -> str:
        """The path inside the filesystem of a ``path`` given by the user (`uri_for`'s
        inverse)."""
        return _split_uri(path)[1] if self.uri is not None else path

    def uri_for(self, inner: str) -> str:
        """The URI (with this location's query options) of ``inner``; for a filesystem
        object or the local disk, ``inner`` itself."""
        if self.uri is None:
            return inner
        prefix, _, query = _split_uri(self.uri)
        return prefix + inner + ("?" + query if query else "")

    def name_of(self, inner: str) -> str:
        """A printable name for ``inner`` (a URI when the location has one; no secrets)."""
        if self.uri is None:
            return inner if self.filesystem is None else f"{inner} (on {self.filesystem!r})"
        return redact(_split_uri(self.uri)[0] + inner)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Location, (self.uri, self.filesystem))


def _split_uri(uri: str) -> tuple[str, str, str]:
    """``(prefix, inner path, query)`` of a URI, as pyarrow splits it.

    Example:
        >>> _split_uri("s3://b/k?region=x"), _split_uri("hdfs://host:8020/a")
        (('s3://', 'b/k', 'region=x'), ('hdfs://host:8020', '/a', ''))
    """
    base, _, query = uri.partition("?")
    scheme, rest = base.split("://", 1)
    if scheme.lower() in _BUCKET_SCHEMES or scheme.lower() == "file":
        user, at, tail = rest.partition("@")
        if at and "/" not in user:  # s3://key:secret@bucket/...: credentials, not path
            return f"{scheme}://{user}@", tail, query
        return scheme + "://", rest, query
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}", "/" + path, query


def resolve(path: str | os.PathLike, filesystem: pafs.FileSystem | None) -> tuple[Location, str]:
    """Splits a user's path (or URI) and ``filesystem`` into a `Location` and an inner path.

    Args:
        path: a local path, a URI (``s3://bucket/key?endpoint_override=...``), or with
            ``filesystem`` a path inside it (``bucket/key`` for S3 and GCS).
        filesystem: a `pyarrow.fs.FileSystem` (or ``None``).

    Returns:
        ``(location, inner_path)``.

    Raises:
        TypeError: if ``filesystem`` is not a pyarrow filesystem or ``path`` is not a
            string or path.
        ValueError: for a malformed URI, an unknown scheme, or a URI given together
            with ``filesystem``.

    Example:
        >>> location, inner = resolve("s3://bucket/train?region=eu-west-1", None)
        >>> inner, location.is_local
        ('bucket/train', False)
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"expected a path or URI string. Received: {path!r}")
    path = os.fspath(path)
    if filesystem is not None:
        import pyarrow.fs as pafs

        if not isinstance(filesystem, pafs.FileSystem):
            raise TypeError(
                f"filesystem must be a pyarrow.fs.FileSystem (wrap fsspec filesystems in "
                f"pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))). "
                f"Received: {filesystem!r}"
            )
        if is_uri(path):
            raise ValueError(
                f"give either a URI or filesystem= with a path inside it, not both. "
                f"Received: {redact(path)!r} and {type(filesystem).__name__}"
            )
        return Location(filesystem=filesystem), path
    if not is_uri(path):
        return Location(), os.path.abspath(path)
    scheme = path.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown URI scheme {scheme!r} in {redact(path)!r}; expected one of "
            f"{', '.join(s + '://' for s in SCHEMES)} or a local path"
        )
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        inner = pafs.FileSystem.from_uri(path)[1]
    except (pa.ArrowInvalid, ValueError) as error:
        raise ValueError(f"malformed URI {redact(path)!r}: {error}") from None
    except OSError as error:  # e.g. resolving an S3 bucket's region
        raise OSError(f"cannot reach {redact(path)}: {error}") from None
    if scheme in _BUCKET_SCHEMES and not inner.strip("/"):
        raise ValueError(f"malformed URI {redact(path)!r}: it names no bucket")
    return Location(uri=path), inner


def resolve_paths(
    paths: list[str], filesystem: pafs.FileSystem | None
) -> tuple[Location, list[str]]:
    """Like `resolve` for many paths, which must all be on one filesystem.

    Local paths are kept as given; URIs must share their scheme, host and query options
    (the filesystem is built once, from the first).

    Args:
        paths: local paths, or URIs, or with ``filesystem`` paths inside it.
        filesystem: a `pyarrow.fs.FileSystem` (or ``None``).

    Returns:
        ``(location, inner_paths)``, the inner paths in the order of ``paths``.

    Raises:
        ValueError: for mixed local paths and URIs, URIs on different filesystems, or
            any error `resolve` raises for the first.
        TypeError: as `resolve`.

    Example:
        >>> _, inner = resolve_paths(["s3://b/x.png?region=eu-west-1",
        ...                           "s3://b/y.png?region=eu-west-1"], None)
        >>> inner
        ['b/x.png', 'b/y.png']
    """
    if not paths:
        return resolve(".", filesystem)[0], []
    location, first = resolve(paths[0], filesystem)
    if location.uri is None:
        uris = [p for p in paths if is_uri(p)]
        if uris and filesystem is None:
            raise ValueError(
                f"paths mix local files and URIs, e.g. {redact(uris[0])!r}; use one kind"
            )
        return location, list(paths)
    prefix, _, query = _split_uri(location.uri)
    inner = [first]
    for path in paths[1:]:
        other_prefix, other, other_query = _split_uri(path) if is_uri(path) else ("", "", "")
        if (other_prefix, other_query) != (prefix, query):
            raise ValueError(
                f"all paths must be on one filesystem: {redact(path)!r} is not on "
                f"{redact(prefix)!r} with the options of {redact(paths[0])!r}"
            )
        inner.append(other)
    return location, inner
