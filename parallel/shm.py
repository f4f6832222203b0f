"""Moving batches between processes through POSIX shared memory.

NOTE [ Who owns a segment ]
The parent creates, recycles and unlinks every segment; workers only map them. Created
segments are registered with multiprocessing's resource tracker, a separate process
that unlinks whatever is still registered if the parent dies without cleaning up (even
by SIGKILL). Workers map ``/dev/shm/<name>`` with plain ``mmap`` so that they never
register (or unregister) anything with the tracker.

NOTE [ When a segment is reused ]
The parent builds the batch's arrays as views of one ``base`` array over the segment
(numpy keeps ``base`` alive through every view of a view). A weak reference to ``base``
marks the segment reusable only when the consumer holds no array of that batch any
more, so a consumer that keeps a whole epoch of batches in a list keeps correct data.
The weak reference's callback is ``deque.append``, C code that cannot be interrupted:
a Python finalizer could swallow a Ctrl-C that lands inside it. Dead references are
turned back into free segments by the next `SharedArrayPool.acquire`.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import secrets
import threading
import weakref
from collections import OrderedDict, deque
from multiprocessing import resource_tracker
from typing import Any

import numpy as np

SHM_DIR = "/dev/shm"
# Arrays smaller than this travel inside the pickle: a shared-memory round trip costs
# more than copying a few kilobytes through the pipe.
OUT_OF_BAND_MIN_BYTES = 64 * 1024
_ALIGN = 64
_MIN_SEGMENT = 1 << 20


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def segment_prefix() -> str:
    """A name prefix unique to one pool: ``seqpipe_<pid>_<random>_``."""
    return f"seqpipe_{os.getpid()}_{secrets.token_hex(4)}_"


def leftover_segments(prefix: str = "seqpipe_") -> list[str]:
    """Names under ``/dev/shm`` that start with ``prefix`` (for cleanup checks)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


# -- worker side --------------------------------------------------------------------


def pack(batch: Any) -> tuple[bytes, list[memoryview], tuple[tuple[int, int], ...], int]:
    """Pickles a batch with its large contiguous arrays kept out of band.

    Returns:
        ``(header, buffers, layout, total)``: the pickle, the out-of-band buffers, their
        ``(offset, nbytes)`` in a segment, and the segment size they need.
    """
    buffers: list[memoryview] = []

    def keep_large_out_of_band(buf: pickle.PickleBuffer) -> bool:
        view = buf.raw()
        if view.nbytes < OUT_OF_BAND_MIN_BYTES:
            return True  # true means "serialise in band"
        buffers.append(view)
        return False

    header = pickle.dumps(batch, protocol=5, buffer_callback=keep_large_out_of_band)
    layout = []
    offset = 0
    for view in buffers:
        layout.append((offset, view.nbytes))
        offset = _align(offset + view.nbytes)
    return header, buffers, tuple(layout), offset


class SegmentWriter:
    """A worker's cache of mapped segments (bounded, least recently used dropped)."""

    def __init__(self, max_mapped: int = 16) -> None:
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max = max_mapped

    def _target(self, name: str, size: int) -> np.ndarray:
        target = self._maps.pop(name, None)
        if target is None or target.nbytes < size:
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
            try:
                target = np.frombuffer(mmap.mmap(fd, size), dtype=np.uint8)
            finally:
                os.close(fd)
        self._maps[name] = target
        while len(self._maps) > self._max:
            self._maps.popitem(last=False)
        return target

    def write(
        self, name: str, size: int, buffers: list[memoryview], layout: tuple[tuple[int, int], ...]
    ) -> None:
        """Copies ``buffers`` into segment ``name`` at the offsets of ``layout``."""
        target = self._target(name, size)
        for view, (offset, nbytes) in zip(buffers, layout, strict=True):
            target[offset : offset + nbytes] = np.frombuffer(view, dtype=np.uint8)


# -- parent side --------------------------------------------------------------------


class _Segment:
    __slots__ = ("mapping", "name", "size")

    def __init__(self, name: str, size: int) -> None:
        path = os.path.join(SHM_DIR, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            self.mapping = mmap.mmap(fd, size)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        resource_tracker.register("/" + name, "shared_memory")
        self.name = name
        self.size = size

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, self.name))
        resource_tracker.unregister("/" + self.name, "shared_memory")
        # The mapping itself stays valid for arrays still built on it; it is unmapped
        # when the last of them is garbage collected.


class SharedArrayPool:
    """The parent's pool of reusable shared-memory segments.

    Args:
        max_free: free segments kept for reuse; more are unlinked when released.

    Example:
        >>> pool = SharedArrayPool(max_free=2)
        >>> header, buffers, layout, total = pack(np.arange(20000.0))
        >>> seg = pool.acquire(total)
        >>> SegmentWriter().write(seg.name, seg.size, buffers, layout)
        >>> float(pool.unpack(seg.name, header, layout)[-1])
        19999.0
        >>> pool.close()
    """

    def __init__(self, max_free: int = 16) -> None:
        self._prefix = segment_prefix()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._free: list[_Segment] = []  # invariant: no array references these
        self._busy: dict[str, _Segment] = {}  # granted to a worker or held by arrays
        # id(weak ref to a batch's base) -> (the ref, its segment); keyed by id because
        # a weak ref hashes like its referent, and arrays are unhashable.
        self._refs: dict[int, tuple[weakref.ref, str]] = {}
        self._dead: deque[weakref.ref] = deque()  # refs whose batch was collected
        self._max_free = max_free
        self._closed = False

    @property
    def prefix(self) -> str:
        return self._prefix

    def acquire(self, nbytes: int) -> _Segment:
        """Returns a free segment of at least ``nbytes``, creating one if none fits."""
        self._collect()
        with self._lock:
            if self._closed:
                raise RuntimeError("the shared-memory pool is closed")
            fits = [s for s in self._free if s.size >= nbytes]
            if fits:
                segment = min(fits, key=lambda s: s.size)
                self._free.remove(segment)
            else:
                size = max(_MIN_SEGMENT, _align(nbytes))
                segment = _Segment(f"{self._prefix}{next(self._counter)}", size)
            self._busy[segment.name] = segment
            return segment

    def _collect(self) -> None:
        while self._dead:
            ref = self._dead.popleft()
            with self._lock:
                entry = self._refs.pop(id(ref), None)
            if entry is not None:
                self.release(entry[1])

    def release(self, name: str) -> None:
        """Returns segment ``name`` to the free list (thread-safe)."""
        with self._lock:
            segment = self._busy.pop(name, None)
            if segment is None:
                return
            if self._closed:
                segment.unlink()
                return
            self._free.append(segment)
            if len(self._free) > self._max_free:
                smallest = min(self._free, key=lambda s: s.size)
                self._free.remove(smallest)
                smallest.unlink()

    def unpack(self, name: str | None, header: bytes, layout: tuple[tuple[int, int], ...]) -> Any:
        """Rebuilds a batch whose large arrays are views of segment ``name``."""
        if name is None:
            return pickle.loads(header)
        with self._lock:
            segment = self._busy[name]
        total = layout[-1][0] + layout[-1][1]
        base = np.frombuffer(segment.mapping, dtype=np.uint8, count=total)
        batch = pickle.loads(header, buffers=[base[o : o + n] for o, n in layout])
        ref = weakref.ref(base, self._dead.append)
        with self._lock:
            self._refs[id(ref)] = (ref, name)
        return batch

    def close(self) -> None:
        """Unlinks every segment; segments still held by arrays are unlinked now too and
        unmapped when those arrays die."""
        with self._lock:
            self._closed = True
            for segment in self._free:
                segment.unlink()
            for segment in self._busy.values():
                segment.unlink()
            self._free.clear()
            self._busy.clear()
            self._refs.clear()
