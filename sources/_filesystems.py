"""Where a source's files live: URIs and pyarrow filesystems, per-process handles, retries.

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

Remote reads go through `FileStore.read_range` and `FileStore.read_file`, which retry
transient failures (HTTP 500/503, throttling, connection resets) with exponential
backoff, map a missing object, bucket or permission to an error naming the URI (with
secrets in its query redacted), and count requests and bytes per process
(`fetch_counters`) for the tests and benchmarks.
"""

from __future__ import annotations

import os
import pickle
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._disk_cache import DiskCache

if TYPE_CHECKING:
    # pyarrow is imported where it is used: local image files are read with open(),
    # and a worker that unpickles an `ImageFiles` should not pay 0.1 s for pyarrow.
    import pyarrow as pa
    import pyarrow.fs as pafs

T = TypeVar("T")

# What pyarrow.fs.FileSystem.from_uri understands (HDFS needs a JVM at read time).
SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs")
_BUCKET_SCHEMES = ("s3", "gs", "gcs")  # the bucket is the first part of the inner path
_SECRET_PARAMS = {"access_key", "secret_key", "session_token"}
_TRANSIENT = re.compile(
    r"\b50[0234]\b|SlowDown|ServiceUnavailable|Service Unavailable|InternalError|"
    r"RequestTimeout|Throttl|reset by peer|Connection reset|Broken pipe|timed out|"
    r"curlCode: (?:7|18|28|52|55|56)\b|Couldn't connect|Empty reply|Recv failure",
    re.IGNORECASE,
)
RETRIES = 5  # attempts after the first
BACKOFF_S = 0.05  # first pause; doubled for every further attempt

_counters = {"requests": 0, "bytes": 0}


def fetch_counters() -> dict[str, int]:
    """Returns ``{"requests", "bytes"}`` fetched from remote storage by this process."""
    return dict(_counters)


def redact(uri: str) -> str:
    """``uri`` without credentials: user info and secret query options become ``***``.

    Example:
        >>> redact("s3://AKID:shh@b/k?secret_key=shh&region=eu-west-1")
        's3://***@b/k?secret_key=***&region=eu-west-1'
    """
    base, sep, query = re.sub(r"^([A-Za-z][\w+.-]*://)[^/@?]*@", r"\1***@", uri).partition("?")
    if not sep:
        return base
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    shown = [(k, "***" if k in _SECRET_PARAMS else v) for k, v in pairs]
    return base + "?" + urllib.parse.urlencode(shown, safe="*:/")


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


def _uri_of(location: Location, path: str) -> str:
    """A printable name for ``path`` (a URI when the location has one; no secrets)."""
    if location.uri is None:
        return path if location.filesystem is None else f"{path} (on {location.filesystem!r})"
    return redact(_split_uri(location.uri)[0] + path)


class FileStore:
    """Reads files of one `Location`, with retries and an optional local `DiskCache`.

    Args:
        location: where the files are.
        cache: a `DiskCache` for remote bytes, or ``None``.

    Example:
        >>> store = FileStore(Location())
        >>> store.read_file(__file__).startswith(b'"')
        True
    """

    def __init__(self, location: Location, cache: DiskCache | None = None) -> None:
        self.location = location
        self.cache = None if location.is_local else cache
        self._files: dict[tuple[int, str], pa.NativeFile] = {}

    def check_saveable(self, owner: str) -> None:
        """Raises `ValueError` when the files were given by a filesystem object: a config
        holds URIs, never a filesystem (nor the credentials it may carry)."""
        filesystem = self.location.filesystem
        if filesystem is not None:
            raise ValueError(
                f"{owner} over a {type(filesystem).__name__} object cannot be saved in a "
                f"config; build it from a URI instead (e.g. "
                f"'s3://bucket/prefix?endpoint_override=host:port&scheme=http')"
            )

    def uri(self, path: str) -> str:
        """The name errors and reprs use for ``path``."""
        return _uri_of(self.location, path)

    def call(self, what: Callable[[pafs.FileSystem], T], path: str) -> T:
        """Runs ``what(filesystem)``, retrying transient errors, naming ``path`` in errors.

        Raises:
            FileNotFoundError: for a missing object or bucket.
            PermissionError: for denied access.
            OSError: for other failures, or transient ones that outlast the retries.
        """
        for attempt in range(RETRIES + 1):
            try:
                return what(self.location.open())
            except FileNotFoundError as error:
                raise FileNotFoundError(f"not found: {self.uri(path)} ({error})") from None
            except PermissionError as error:
                raise PermissionError(f"access denied to {self.uri(path)} ({error})") from None
            except OSError as error:
                message = str(error)
                if _TRANSIENT.search(message) and attempt < RETRIES:
                    time.sleep(BACKOFF_S * 2**attempt)
                    continue
                if "NO_SUCH_BUCKET" in message or "NoSuchBucket" in message:
                    raise FileNotFoundError(
                        f"bucket not found for {self.uri(path)} ({message})"
                    ) from None
                if re.search(r"ACCESS_DENIED|AccessDenied|\b403\b", message):
                    raise PermissionError(
                        f"access denied to {self.uri(path)} ({message})"
                    ) from None
                raise OSError(f"reading {self.uri(path)} failed: {message}") from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def info(self, path: str) -> pafs.FileInfo:
        """The `pyarrow.fs.FileInfo` of ``path`` (type, size, mtime)."""
        return self.call(lambda fs: fs.get_file_info(path), path)

    def missing(self, paths: list[str]) -> list[str]:
        """The names (URIs) of the files of ``paths`` that do not exist."""
        if self.location.uri is None and self.location.filesystem is None:
            return [p for p in paths if not os.path.isfile(p)]
        import pyarrow.fs as pafs

        infos = self.call(lambda fs: fs.get_file_info(paths), paths[0]) if paths else []
        return [self.uri(i.path) for i in infos if i.type != pafs.FileType.File]

    def list_files(self, root: str, recursive: bool = False) -> list[pafs.FileInfo]:
        """The files under directory ``root``, sorted by path.

        Raises:
            FileNotFoundError: if ``root`` is missing (or an empty prefix).
        """
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(root.rstrip("/") or "/", recursive=recursive)
        infos = self.call(lambda fs: fs.get_file_info(selector), root)
        return sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path)

    def open(self, path: str) -> pa.NativeFile:
        """This process's open random-access handle on ``path`` (kept: opening costs a
        request on object stores). Call it inside `call`."""
        key = (os.getpid(), path)
        handle = self._files.get(key)
        if handle is None:
            handle = self._files[key] = self.location.open().open_input_file(path)
        return handle

    def _fetch(self, path: str, offset: int, length: int | None) -> bytes:
        def read(fs: pafs.FileSystem) -> bytes:
            if length is None:
                with fs.open_input_stream(path) as stream:
                    return stream.read()
            key = (os.getpid(), path)
            if key in self._files:
                try:
                    return self._files[key].read_at(length, offset)
                except OSError:
                    # Reopen: the object may be gone or replaced, and a retry wants a
                    # fresh handle anyway.
                    del self._files[key]
            return self.open(path).read_at(length, offset)

        data = self.call(read, path)
        _counters["requests"] += 1
        _counters["bytes"] += len(data)
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}}

    def read_range(self, path: str, offset: int, length: int, version: str) -> bytes:
        """Bytes ``[offset, offset + length)`` of ``path``, from the cache when it has them.

        Args:
            path: file path inside the location.
            offset: first byte.
            length: number of bytes.
            version: what identifies this version of the file in the cache (`version_of`).
        """
        if self.cache is None:
            return self._fetch(path, offset, length)
        key = (self.location.uri or "", path, version, offset, length)
        return self.cache.get(key, lambda: self._fetch(path, offset, length))

    def read_file(self, path: str, version: str = "") -> bytes:
        """All bytes of ``path`` (local files are read directly, never cached).

        Args:
            path: file path inside the location.
            version: what identifies this version of the file in the cache.
        """
        if self.location.is_local and self.location.filesystem is None:
            try:
                with open(path, "rb") as file:
                    return file.read()
            except FileNotFoundError:
                raise FileNotFoundError(f"not found: {path}") from None
        if self.cache is None:
            return self._fetch(path, 0, None)
        key = (self.location.uri or "", path, version)
        return self.cache.get(key, lambda: self._fetch(path, 0, None))


def version_of(info: pafs.FileInfo) -> str:
    """What tells two versions of a file apart in cache keys: its size and mtime."""
    mtime = info.mtime_ns if info.mtime_ns is not None else ""
    return f"{info.size}:{mtime}"
