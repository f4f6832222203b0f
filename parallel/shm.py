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
import errno
import itertools
import mmap
import os
import pickle
import threading
import weakref
from collections import OrderedDict, deque
from multiprocessing import resource_tracker
from typing import Any

import numpy as np

from .leftovers import remove_dead_segments, segment_prefix

SHM_DIR = "/dev/shm"
# Where segments are created; read when a pool starts, so a test or a container with a
# small /dev/shm can point it at another tmpfs.
SHM_DIR_ENV = "SEQPIPE_SHM_DIR"
# Arrays smaller than this travel inside the pickle: a shared-memory round trip costs
# more than copying a few kilobytes through the pipe.
OUT_OF_BAND_MIN_BYTES = 64 * 1024
_ALIGN = 64
_MIN_SEGMENT = 1 << 20


def align(n: int) -> int:
    """Rounds ``n`` up to a multiple of 64 bytes (a cache line)."""
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class NoSpace(OSError):
    """The segment directory has no room for a segment of the size asked for."""

    def __init__(self, directory: str, nbytes: int, free: int) -> None:
        super().__init__(
            f"{directory} has {free / 2**20:.1f} MiB free; a batch needs "
            f"{nbytes / 2**20:.1f} MiB of shared memory"
        )
        self.directory, self.nbytes, self.free = directory, nbytes, free


def shm_dir() -> str:
    """The directory segments are created in: ``$SEQPIPE_SHM_DIR``, else ``/dev/shm``."""
    return os.environ.get(SHM_DIR_ENV) or SHM_DIR


def free_bytes(directory: str) -> int:
    """Bytes an unprivileged process may still allocate under ``directory``."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def leftover_segments(prefix: str = "seqpipe_", directory: str | None = None) -> list[str]:
    """Names under ``directory`` (default: `shm_dir`) that start with ``prefix`` (for
    cleanup checks)."""
    try:
        return sorted(n for n in os.listdir(directory or shm_dir()) if n.startswith(prefix))
    except FileNotFoundError:
        return []


# -- worker side --------------------------------------------------------------------


_PLAIN = (int, float, bool, str, bytes, type(None))


def encode_small(batch: Any, depth: int = 0) -> Any:
    """Encodes a batch of small arrays as plain tuples, or returns ``None``.

    Pickling a small ndarray goes through its ``__reduce_ex__`` and the dtype's, about
    4x the cost of ``tobytes`` plus a tuple: on tiny batches that is the per-batch cost.
    Only arrays under `OUT_OF_BAND_MIN_BYTES` with simple dtypes, in tuples, lists and
    dicts (two levels deep), and plain scalars qualify; anything else returns ``None``.

    Example:
        >>> code = encode_small((np.arange(3), {"y": 1.5}))
        >>> decode_small(code)
        (array([0, 1, 2]), {'y': 1.5})
        >>> encode_small(np.zeros(10**6)) is None  # large: shared memory's job
        True
    """
    kind = type(batch)
    if kind is np.ndarray:
        if batch.nbytes >= OUT_OF_BAND_MIN_BYTES or batch.dtype.hasobject or batch.dtype.names:
            return None
        return ("a", batch.dtype.str, batch.shape, batch.tobytes())
    if depth < 2 and kind in (tuple, list, dict):
        items = batch.values() if kind is dict else batch
        encoded = []
        for item in items:
            code = encode_small(item, depth + 1)
            if code is None:
                return None
            encoded.append(code)
        if kind is dict:
            return ("d", tuple(batch), encoded)
        return ("t" if kind is tuple else "l", encoded)
    if kind in _PLAIN:
        return ("p", batch)
    return None


def decode_small(code: Any) -> Any:
    """Rebuilds what `encode_small` encoded (arrays are new and writable)."""
    tag = code[0]
    if tag == "a":
        _, dtype, shape, data = code
        return np.ndarray(shape, dtype, bytearray(data))
    if tag == "p":
        return code[1]
    if tag == "d":
        return dict(zip(code[1], map(decode_small, code[2]), strict=True))
    items = [decode_small(item) for item in code[1]]
    return tuple(items) if tag == "t" else items


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
        offset = align(offset + view.nbytes)
    return header, buffers, tuple(layout), offset


def _address(buffer: Any) -> int:
    return np.frombuffer(buffer, dtype=np.uint8).__array_interface__["data"][0]


def pack_in_place(batch: Any, target: np.ndarray) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """Pickles a batch whose large arrays already lie in ``target`` (a mapped segment).

    Buffers inside ``target`` stay out of band, described by their ``(offset, nbytes)``
    in it; anything else (sample weights, small arrays) travels inside the pickle.

    Returns:
        ``(header, layout)``, as `SharedArrayPool.unpack` takes them.
    """
    start = _address(target)
    end = start + target.nbytes
    layout: list[tuple[int, int]] = []

    def keep_in_target_out_of_band(buf: pickle.PickleBuffer) -> bool:
        view = buf.raw()
        address = _address(view) if view.nbytes else -1
        if not (start <= address and address + view.nbytes <= end):
            return True  # true means "serialise in band"
        layout.append((address - start, view.nbytes))
        return False

    header = pickle.dumps(batch, protocol=5, buffer_callback=keep_in_target_out_of_band)
    return header, tuple(layout)


class SegmentWriter:
    """A worker's cache of mapped segments (bounded, least recently used dropped).

    Args:
        max_mapped: segments kept mapped.
        directory: where the parent creates segments (default: `shm_dir`).
    """

    def __init__(self, max_mapped: int = 16, directory: str | None = None) -> None:
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max = max_mapped
        self._dir = directory or shm_dir()

    def view(self, name: str, size: int) -> np.ndarray:
        """Segment ``name`` as a writable uint8 array of ``size`` bytes."""
        target = self._maps.pop(name, None)
        if target is None or target.nbytes < size:
            fd = os.open(os.path.join(self._dir, name), os.O_RDWR)
            try:
                # Populated: one call maps every page, instead of a fault per page.
                flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                target = np.frombuffer(mmap.mmap(fd, size, flags=flags), dtype=np.uint8)
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
        target = self.view(name, size)
        for view, (offset, nbytes) in zip(buffers, layout, strict=True):
            target[offset : offset + nbytes] = np.frombuffer(view, dtype=np.uint8)


# -- parent side --------------------------------------------------------------------


class _Segment:
    """One segment file, with every page allocated up front.

    ``ftruncate`` alone makes a sparse file: on a full tmpfs the pages would fail only
    when a worker writes them, as SIGBUS. ``posix_fallocate`` fails here instead, with
    ENOSPC, which the pool turns into a batch sent through the pipe.
    """

    __slots__ = ("directory", "mapping", "name", "size")

    def __init__(self, directory: str, name: str, size: int) -> None:
        free = free_bytes(directory)
        if size > free:
            raise NoSpace(directory, size, free)
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EFBIG):
                    raise
                raise NoSpace(directory, size, free_bytes(directory)) from error
            self.mapping = mmap.mmap(fd, size)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        if directory == SHM_DIR:
            # The tracker unlinks with shm_unlink, which only knows /dev/shm.
            resource_tracker.register("/" + name, "shared_memory")
        self.directory = directory
        self.name = name
        self.size = size

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, self.name))
        if self.directory == SHM_DIR:
            resource_tracker.unregister("/" + self.name, "shared_memory")
        # The mapping itself stays valid for arrays still built on it; it is unmapped
        # when the last of them is garbage collected.


class SharedArrayPool:
    """The parent's pool of reusable shared-memory segments.

    Starting, it removes the segments that killed processes left in ``directory``
    (NOTE [ Leftovers of killed processes ] in ``parallel/leftovers.py``).

    Args:
        max_free: free segments kept for reuse; more are unlinked when released.
        directory: where segments are created (default: `shm_dir`, read now).

    Raises:
        ValueError: if ``directory`` does not exist.

    Example:
        >>> pool = SharedArrayPool(max_free=2)
        >>> header, buffers, layout, total = pack(np.arange(20000.0))
        >>> seg = pool.acquire(total)
        >>> SegmentWriter().write(seg.name, seg.size, buffers, layout)
        >>> float(pool.unpack(seg.name, header, layout)[-1])
        19999.0
        >>> pool.close()
    """

    def __init__(self, max_free: int = 16, directory: str | None = None) -> None:
        self.directory = directory or shm_dir()
        if not os.path.isdir(self.directory):
            raise ValueError(
                f"the shared-memory directory {self.directory!r} does not exist; set "
                f"{SHM_DIR_ENV} to a directory on a tmpfs (default {SHM_DIR})"
            )
        remove_dead_segments(self.directory)
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

    def usage(self) -> tuple[int, int]:
        """``(bytes, count)`` of the segments the pool holds now, lent or free."""
        with self._lock:
            segments = [*self._free, *self._busy.values()]
        return sum(s.size for s in segments), len(segments)

    def acquire(self, nbytes: int) -> _Segment:
        """Returns a free segment of at least ``nbytes``, creating one if none fits.

        Raises:
            NoSpace: if the directory has no room for a new segment, even after
                unlinking the free ones.
        """
        self._collect()
        with self._lock:
            if self._closed:
                raise RuntimeError("the shared-memory pool is closed")
            fits = [s for s in self._free if s.size >= nbytes]
            if fits:
                segment = min(fits, key=lambda s: s.size)
                self._free.remove(segment)
            else:
                segment = self._create(align(nbytes))
            self._busy[segment.name] = segment
            return segment

    def _create(self, nbytes: int) -> _Segment:
        name = f"{self._prefix}{next(self._counter)}"
        size = max(_MIN_SEGMENT, nbytes)
        try:
            return _Segment(self.directory, name, size)
        except NoSpace:
            if size > nbytes:
                with contextlib.suppress(NoSpace):
                    return _Segment(self.directory, name, nbytes)
            if not self._free:
                raise
        # Free segments too small for this batch still hold their pages: give them back.
        for segment in self._free:
            segment.unlink()
        self._free.clear()
        return _Segment(self.directory, name, nbytes)

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
        total = max(offset + nbytes for offset, nbytes in layout)
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
