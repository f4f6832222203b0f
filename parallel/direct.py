"""Reading a `Pipeline` batch straight into shared memory.

NOTE [ Read-direct ]
A worker normally computes a batch into new arrays and copies them into a segment. For
a `Pipeline` without transforms whose sources know their row shape and dtype (numpy
arrays, `sources.HDF5Matrix`), the batch's arrays are known before anything is read:
the worker asks for a segment first, lays the arrays out in it, and the sources read
into them (h5py's ``read_direct``). One copy, the one from the file, instead of two.
The parent plans the same layout when it submits the batch, and the dispatcher sends
the segment together with the task, so the worker does not wait for a grant (0.36 ms
a batch on 3 MB HDF5 batches before; asking remains the fallback: after a worker is
replaced, or when there was no room).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..pipeline import Pipeline
from ..pipeline.batches import BATCHES, SINGLE, TUPLE
from .shm import OUT_OF_BAND_MIN_BYTES, align


class DirectRead(NamedTuple):
    """Where each array of one batch goes in a segment of ``nbytes``."""

    nbytes: int
    keys: tuple[Any, ...] | None  # dict keys, tuple positions, or None for one array
    arrays: tuple[tuple[int, tuple[int, ...], np.dtype], ...]  # (offset, shape, dtype)

    def views(self, target: np.ndarray) -> Any:
        """The batch's arrays as views of ``target``, structured like the batch."""
        views = [
            target[offset : offset + int(np.prod(shape)) * dtype.itemsize]
            .view(dtype)
            .reshape(shape)
            for offset, shape, dtype in self.arrays
        ]
        if self.keys is None:
            return views[0]
        if isinstance(self.keys[0], int):
            return tuple(views)
        return dict(zip(self.keys, views, strict=True))


def _reads_into(source: Any) -> bool:
    return isinstance(source, np.ndarray) or callable(getattr(source, "read_into", None))


def plan_direct_read(sequence: Any, index: int) -> DirectRead | None:
    """The layout of batch ``index`` of ``sequence`` when it can be read in place.

    Returns ``None`` for anything but a plain `Pipeline` (no transforms, no wrapped
    Sequence, no subclass overriding how batches are made; its stages may be timed,
    `StageTimed`) over sources that read into arrays, and for batches small enough to
    travel inside the pickle.

    Example:
        >>> from seqpipe.pipeline import Pipeline
        >>> p = Pipeline(np.zeros((100, 64, 64), np.float32), batch_size=32)
        >>> layout = plan_direct_read(p, 3)  # the short last batch: 4 rows
        >>> layout.views(np.empty(layout.nbytes, np.uint8)).shape
        (4, 64, 64)
    """
    # A pipeline whose stages are timed is read in place as the pipeline itself
    # (`parallel.stage_timing.StageTimed.get_batch` passes ``out`` on).
    sequence = getattr(sequence, "timed_sequence", sequence)
    kind = type(sequence)
    if not (
        isinstance(sequence, Pipeline)
        and kind.__getitem__ is Pipeline.__getitem__
        and kind.get_batch is Pipeline.get_batch
        and not sequence.transforms
        and sequence.structure != BATCHES
    ):
        return None
    sources = sequence.sources
    if sequence.structure == SINGLE:
        keys, items = None, [sources]
    elif sequence.structure == TUPLE:
        keys, items = tuple(range(len(sources))), list(sources)
    else:
        keys, items = tuple(sources), list(sources.values())
    if not all(_reads_into(source) for source in items):
        return None
    # Without computing the sample ids (a shuffled plan's cost ~0.5 ms for 64 samples).
    rows = sequence.batch_rows(index, sequence.epoch)
    arrays = []
    offset = 0
    for source in items:
        shape = (rows, *source.shape[1:])
        dtype = np.dtype(source.dtype)
        if dtype.hasobject:
            return None
        arrays.append((offset, shape, dtype))
        offset = align(offset + int(np.prod(shape)) * dtype.itemsize)
    if all(int(np.prod(s)) * d.itemsize < OUT_OF_BAND_MIN_BYTES for _, s, d in arrays):
        return None
    return DirectRead(offset, keys, tuple(arrays))
