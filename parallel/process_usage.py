"""What a worker process uses, read from ``/proc`` by the parent (Linux), a few times a
second at most: never on the per-batch path."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_demand_seconds(pid: int) -> float | None:
    """Seconds process ``pid`` ran on a CPU or waited, runnable, for one.

    A CPU-bound worker that shares its cores waits in the run queue rather than running:
    it still wants a CPU. Counting both tells it apart from a worker waiting on I/O,
    whatever else runs on the machine. Falls back to CPU time alone (``/proc/pid/stat``)
    where the kernel keeps no scheduler statistics.

    Returns:
        The seconds, or ``None`` if the process is gone (or there is no ``/proc``).

    Example:
        >>> cpu_demand_seconds(os.getpid()) > 0
        True
    """
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            running, waiting = f.read().split()[:2]
        return (int(running) + int(waiting)) / 1e9
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def private_rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` that no other process shares: its own heap, not the
    shared-memory segments or libraries it maps (those are counted once, elsewhere).

    Returns:
        Bytes, or ``None`` if the process is gone (or there is no ``/proc``).

    Example:
        >>> private_rss_bytes(os.getpid()) > 0
        True
    """
    try:
        with open(f"/proc/{pid}/statm") as f:
            resident, shared = f.read().split()[1:3]
    except (OSError, ValueError):
        return None
    return (int(resident) - int(shared)) * _PAGE
