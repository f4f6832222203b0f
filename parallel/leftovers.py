"""Files that killed processes leave behind: shared-memory segments, backup temporaries.

NOTE [ Leftovers of killed processes ]
A SIGKILL runs no cleanup. Python's resource tracker unlinks a killed parent's segments
in ``/dev/shm``, but not those under another ``SEQPIPE_SHM_DIR`` (it only knows
``shm_unlink``), nor any when it is killed too (a process group killed at once, the
out-of-memory killer). So every segment's name says who created it,
``seqpipe_<pid>_<pid namespace>_<random>_<n>`` (`segment_prefix`), and a pool that
starts removes the segments whose creator is dead (`remove_dead_segments`): its pid
namespace is this process's and no process has its pid there. Segments of a live
process, of another pid namespace (containers that share ``/dev/shm`` see one another's
pids as free), or in an older naming are left alone; a pid reused since counts as alive,
so a leftover may stay, but a live process's segment is never removed.

A backup save killed half-way leaves its temporary file, named
``.backup-<host>-<pid>-<random>.tmp`` (`backup_temporary_prefix`); the next save removes
those of dead processes of this host, and those of other hosts, or in an older naming,
once they are an hour old (`remove_dead_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable

# A temporary file this old is a leftover whatever wrote it: no save takes an hour.
STALE_SECONDS = 3600.0

_SEGMENT = re.compile(r"seqpipe_(\d+)_(\d+)_[0-9a-f]+_\d+")
_BACKUP_TEMPORARY = re.compile(r"\.backup-(.+)-(\d+)-[^-]*\.tmp")


def pid_namespace() -> int:
    """The inode of this process's pid namespace (``0`` where ``/proc`` does not say)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists in this pid namespace (any owner).

    Example:
        >>> process_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def segment_prefix() -> str:
    """A name prefix unique to one pool: ``seqpipe_<pid>_<pid namespace>_<random>_``."""
    return f"seqpipe_{os.getpid()}_{pid_namespace()}_{secrets.token_hex(4)}_"


def remove_dead_segments(directory: str) -> list[str]:
    """Removes the segments under ``directory`` whose creator is dead, and returns their
    names (NOTE [ Leftovers of killed processes ])."""
    namespace = pid_namespace()

    def dead(entry: os.DirEntry) -> bool:
        match = _SEGMENT.fullmatch(entry.name)
        return match is not None and int(match[2]) == namespace and not process_alive(int(match[1]))

    return _remove_where(directory, dead)


def backup_temporary_prefix() -> str:
    """The prefix of this process's temporary backup files: ``.backup-<host>-<pid>-``."""
    return f".backup-{socket.gethostname()}-{os.getpid()}-"


def remove_dead_temporaries(directory: str) -> list[str]:
    """Removes the backup temporaries under ``directory`` that no running save writes,
    and returns their names (NOTE [ Leftovers of killed processes ])."""
    host = socket.gethostname()

    def dead(entry: os.DirEntry) -> bool:
        if not (entry.name.startswith(".backup-") and entry.name.endswith(".tmp")):
            return False
        match = _BACKUP_TEMPORARY.fullmatch(entry.name)
        if match is not None and match[1] == host:
            return not process_alive(int(match[2]))
        # Another host's, or an older naming: only its age tells.
        return time.time() - entry.stat().st_mtime > STALE_SECONDS

    return _remove_where(directory, dead)


def _remove_where(directory: str, leftover: Callable[[os.DirEntry], bool]) -> list[str]:
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        # Gone already (another process cleaning up), or another user's: not ours.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if leftover(entry):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed
