"""`get_file`: download a file once into a cache, verify it, and extract it safely.

NOTE [ Atomic, locked downloads ]
A download goes to a temporary file beside its destination and is renamed into place
only once complete and verified, so no partial file ever sits under the final name. A
file lock (``<file>.lock``, filelock) is held for the whole check-download-extract, so
processes racing for the same file download it once and the others find it cached.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.parse
import warnings

import filelock

from .archives import extract_archive

_ATTEMPTS = 3
_CHUNK = 1 << 20
_TIMEOUT_S = 30
# What ``untar`` strips from ``fname``: the download is always ``<name>.tar.gz``.
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


def _cache_root(cache_dir: str | None) -> str:
    if cache_dir is None:
        cache_dir = (
            os.environ.get("SEQPIPE_HOME")
            or os.environ.get("KERAS_HOME")
            or os.path.join(os.path.expanduser("~"), ".keras")
        )
    cache_dir = os.path.expanduser(cache_dir)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        writable = os.access(cache_dir, os.W_OK)
    except OSError:
        writable = False
    # As in Keras: an unwritable cache falls back to /tmp/.keras.
    return cache_dir if writable else os.path.join(tempfile.gettempdir(), ".keras")


def _algorithm(file_hash: str, hash_algorithm: str) -> str:
    if hash_algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    if hash_algorithm not in ("md5", "sha256"):
        raise ValueError(
            f"hash_algorithm must be 'auto', 'md5' or 'sha256'. Received: {hash_algorithm!r}"
        )
    return hash_algorithm


def hash_file(path: str, algorithm: str = "sha256") -> str:
    """Returns the hex digest of a file.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     _ = f.write(b"abc"); f.flush()
        ...     hash_file(f.name, "md5")
        '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.sha256() if algorithm == "sha256" else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(origin: str, destination: str) -> None:
    """Downloads ``origin`` into ``destination`` (a temp path), with bounded retries."""
    # Imported here: together they cost ~70 ms, which `import sources` should not pay.
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(origin, timeout=_TIMEOUT_S) as response:
                total = response.headers.get("Content-Length")
                expected = int(total) if total else None
                written = 0
                with (
                    open(destination, "wb") as out,
                    tqdm(
                        total=expected,
                        unit="B",
                        unit_scale=True,
                        desc=os.path.basename(destination),
                        disable=not sys.stderr.isatty(),
                    ) as bar,
                ):
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                if expected is not None and written != expected:
                    raise ConnectionError(f"got {written} of {expected} bytes")
                return
        except urllib.error.HTTPError as error:
            retry = error.code >= 500
            cause: Exception = error
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            retry, cause = True, error
        if not retry or attempt == _ATTEMPTS:
            raise OSError(
                f"URL fetch failure on {origin} after {attempt} attempt(s): {cause}"
            ) from cause
        time.sleep(0.2 * attempt)


def _file_name(fname: str | None, origin: str | None) -> str:
    if not origin:
        raise ValueError(f"get_file needs the origin URL of the file. Received: origin={origin!r}")
    if fname:
        return os.fspath(fname)
    name = os.path.basename(urllib.parse.urlsplit(origin).path)
    if not name:
        raise ValueError(
            f"cannot take a file name from origin={origin!r} (its path has no file name); "
            f"pass fname"
        )
    return name


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: str | list | None = "auto",
    cache_dir: str | None = None,
) -> str:
    """Downloads a file from a URL if it is not already in the cache.

    The cache is ``~/.keras/datasets`` by default (``cache_dir``, or the environment
    variables ``SEQPIPE_HOME`` / ``KERAS_HOME``, replace ``~/.keras``). See NOTE
    [ Atomic, locked downloads ].

    Args:
        fname: file name in the cache; an absolute path is used as it is. ``None``:
            the last part of the URL's path, as in Keras.
        origin: ``http(s)://`` or ``file://`` URL.
        untar: deprecated in favour of ``extract``; ``fname`` names the extracted
            directory and the download is ``fname + '.tar.gz'``. A tar suffix of
            ``fname`` (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``, ``.tar``) is
            stripped first, as in tf.keras, so ``"data.tar.gz"`` returns ``.../data``.
        md5_hash: deprecated in favour of ``file_hash``; an md5 hex digest.
        file_hash: expected md5 or sha256 hex digest of the downloaded file.
        cache_subdir: subdirectory of the cache; an absolute path is used as it is.
        hash_algorithm: ``'auto'`` (by digest length), ``'md5'`` or ``'sha256'``.
        extract: extract the file as an archive into the cache subdirectory.
        archive_format: ``'auto'``, ``'tar'``, ``'zip'``, a list of them or ``None``.
        cache_dir: cache location instead of ``~/.keras``.

    Returns:
        Path to the downloaded file (or to the extracted directory with ``untar``).

    Raises:
        ValueError: on a hash mismatch after download (the file is deleted; both
            hashes are named), for an unsafe archive, without ``origin``, or when
            ``fname`` is omitted and the URL names no file.
        OSError: when the URL cannot be fetched after bounded retries (the URL and the
            cause are named).

    Example:
        >>> path = get_file("data.csv", "https://example.com/data.csv")  # doctest: +SKIP
        >>> path = get_file(origin="https://example.com/data.csv")  # doctest: +SKIP
    """
    fname = _file_name(fname, origin)
    if untar:
        fname = next((fname[: -len(s)] for s in _TAR_SUFFIXES if fname.endswith(s)), fname)
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    datadir = os.path.join(_cache_root(cache_dir), cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    untar_fpath = os.path.join(datadir, fname)
    fpath = untar_fpath + ".tar.gz" if untar else untar_fpath
    os.makedirs(os.path.dirname(fpath), exist_ok=True)
    with filelock.FileLock(fpath + ".lock"):
        download = not os.path.exists(fpath)
        if not download and file_hash is not None:
            algorithm = _algorithm(file_hash, hash_algorithm)
            if hash_file(fpath, algorithm) != file_hash:
                warnings.warn(
                    f"the cached {fpath} does not match its {algorithm} hash {file_hash}; "
                    f"downloading it again from {origin}",
                    stacklevel=2,
                )
                download = True
        if download:
            _download(origin, fpath, file_hash, hash_algorithm)
        if untar:
            if not os.path.exists(untar_fpath):
                extract_archive(fpath, datadir, archive_format="tar")
            return untar_fpath
        if extract:
            extract_archive(fpath, datadir, archive_format)
    return fpath


def _download(origin: str, fpath: str, file_hash: str | None, hash_algorithm: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(fpath), prefix=".download-")
    os.close(handle)
    try:
        _fetch(origin, tmp)
        if file_hash is not None:
            algorithm = _algorithm(file_hash, hash_algorithm)
            got = hash_file(tmp, algorithm)
            if got != file_hash:
                raise ValueError(
                    f"{origin} downloaded with {algorithm} {got}, expected {file_hash}; the "
                    f"download was deleted. The remote file is corrupted or out of date."
                )
        os.replace(tmp, fpath)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
