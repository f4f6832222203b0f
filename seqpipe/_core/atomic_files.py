"""Files that appear whole or not at all: written under a temporary name, then renamed."""

from __future__ import annotations

import os
import tempfile

# Names of temporaries start with it, so that sweeps of stale ones can find them.
PARTIAL_PREFIX = ".partial-"


def write_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in its directory and a rename.

    Readers see the old file or the new one, never a partial write; a failure leaves no
    temporary file behind. The directory must exist.

    Raises:
        OSError: if the directory cannot be written.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
        >>> write_atomically(path, b"abc"); open(path, "rb").read()
        b'abc'
    """
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
