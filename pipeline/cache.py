"""Decode once: a pipeline's deterministic part written to HDF5, in parallel, resumably.

`write_hdf5` (and `Pipeline.cache`) computes the sources and the transforms before the
first random one over ranges of samples with `joblib.Parallel`, writes them from the
parent process into one HDF5 dataset per batch element, and returns a pipeline that
reads them back with `sources.HDF5Matrix` and runs the remaining transforms.

NOTE [ Cache file protocol ]
``path`` only ever holds a complete cache. The file is written as ``path + ".partial"``
and moved into place with `os.replace` once every block is flushed and the file is
marked complete. The partial file survives a kill at any instant without a journal:
every dataset is allocated when it is created (``ALLOC_TIME_EARLY``), so after the
header is flushed no metadata changes until completion. A block writes raw data only, is
flushed, and only then is its flag set in the ``_seqpipe_done`` dataset (and flushed).
A rerun reopens the partial file and computes only the unflagged blocks. The partial file
carries the fingerprint too, so one left by another pipeline is discarded, never mixed
in. A `filelock.FileLock` on ``path + ".lock"`` serialises writers of one path.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import sources as _sources
from .._core.checks import check_int
from .._core.hooks import provide
from .batches import BATCHES, DICT, SINGLE, TUPLE
from .fingerprint import FORMAT, fingerprint, split_transforms
from .pipeline import Pipeline

if TYPE_CHECKING:
    import h5py

FORMAT_ATTR = "seqpipe_format"
FINGERPRINT_ATTR = "seqpipe_fingerprint"
LAYOUT_ATTR = "seqpipe_layout"
COMPLETE_ATTR = "seqpipe_complete"
DONE = "_seqpipe_done"
# A block (one joblib task) holds about this many bytes; 4 blocks per worker are in
# flight at most, which bounds the parent's memory.
BLOCK_BYTES = 8 << 20
BLOCKS_IN_FLIGHT_PER_JOB = 4
# Chunks are one batch of rows, capped here. Chunks above HDF5's 1 MiB chunk cache are
# read partially, so a random row of an image costs its own bytes only (measured: 64-row
# chunks of 224x224x3 read as fast as a contiguous layout, shuffled or not).
MAX_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class CacheLayout:
    """What a cache file holds: one dataset per batch element, written in blocks.

    Attributes:
        structure: ``'single'``, ``'tuple'`` or ``'dict'``: how elements form a batch.
        keys: the tuple index or dict key of each element.
        shapes: each element's per-sample shape.
        dtypes: each element's dtype, as a string.
        chunk_rows: rows per HDF5 chunk of each element.
        num_samples: rows of every dataset.
        block_rows: rows per block (the unit of work and of resumption).
    """

    structure: str
    keys: tuple[int | str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    chunk_rows: tuple[int, ...]
    num_samples: int
    block_rows: int

    @property
    def names(self) -> list[str]:
        """The HDF5 dataset name of each element."""
        return [str(key) for key in self.keys]

    @property
    def num_blocks(self) -> int:
        return -(-self.num_samples // self.block_rows)

    def block_range(self, block: int) -> tuple[int, int]:
        lo = block * self.block_rows
        return lo, min(lo + self.block_rows, self.num_samples)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CacheLayout:
        raw = json.loads(text)
        raw["keys"] = tuple(raw["keys"])
        raw["shapes"] = tuple(tuple(s) for s in raw["shapes"])
        raw["dtypes"] = tuple(raw["dtypes"])
        raw["chunk_rows"] = tuple(raw["chunk_rows"])
        return cls(**raw)


def batch_elements(batch: Any) -> tuple[str, tuple[int | str, ...], list[np.ndarray]]:
    """``(structure, keys, arrays)`` of a batch: how its elements form it, their tuple
    indices or dict keys, and the arrays."""
    if isinstance(batch, Mapping):
        return DICT, tuple(batch), [np.asarray(v) for v in batch.values()]
    if isinstance(batch, tuple | list):
        return TUPLE, tuple(range(len(batch))), [np.asarray(v) for v in batch]
    return SINGLE, (0,), [np.asarray(batch)]


def _check_element(key: int | str, array: np.ndarray) -> None:
    if isinstance(key, str) and (not key or "/" in key or key in (".", "..") or key == DONE):
        raise ValueError(f"dict key {key!r} cannot name an HDF5 dataset; rename it")
    if not isinstance(key, int | str):
        raise TypeError(f"dict keys must be str to name HDF5 datasets. Received: {key!r}")
    if array.dtype.hasobject or array.dtype.kind == "U":
        raise TypeError(
            f"batch element {key!r} has dtype {array.dtype}, which HDF5 cannot store; "
            f"cache numeric arrays (or bytes, dtype 'S')"
        )
    if array.ndim == 0 or 0 in array.shape[1:]:
        raise ValueError(
            f"batch element {key!r} has shape {array.shape}; a cache needs per-sample "
            f"arrays with samples on the leading axis and no empty dimension"
        )


def deterministic_pipeline(seq: Pipeline, block_rows: int) -> Pipeline:
    """``seq``'s sources and transforms before the first random one, in unshuffled,
    unsharded batches of ``block_rows``: batch ``b`` is block ``b`` of a cache."""
    pipe = Pipeline(seq.sources, batch_size=block_rows)
    for transform in split_transforms(seq)[0]:
        pipe = pipe | transform
    return pipe


def _plan_layout(seq: Pipeline, rows_per_task: int | None, jobs: int) -> CacheLayout:
    # One sample through the deterministic part gives the elements' shapes and dtypes.
    structure, keys, arrays = batch_elements(deterministic_pipeline(seq, 1)[0])
    for key, array in zip(keys, arrays, strict=True):
        _check_element(key, array)
        if array.shape[0] != 1:
            raise ValueError(
                f"the deterministic part turned 1 sample into shape {array.shape} (element "
                f"{key!r}); transforms before the first random one must keep one row per "
                f"sample on the leading axis"
            )
    n, batch_size = seq.num_samples, seq.batch_size
    sample_bytes = [max(1, a[0].nbytes) for a in arrays]
    chunk_rows = tuple(max(1, min(n, batch_size, MAX_CHUNK_BYTES // b)) for b in sample_bytes)
    if rows_per_task is None:
        rows = max(1, BLOCK_BYTES // sum(sample_bytes))
        rows = min(rows, -(-n // (BLOCKS_IN_FLIGHT_PER_JOB * jobs)))
        widest = chunk_rows[int(np.argmax(sample_bytes))]
        if rows > widest:  # whole chunks per block: no chunk is written twice
            rows -= rows % widest
        rows_per_task = rows
    return CacheLayout(
        structure=structure,
        keys=keys,
        shapes=tuple(tuple(int(d) for d in a.shape[1:]) for a in arrays),
        dtypes=tuple(str(a.dtype) for a in arrays),
        chunk_rows=chunk_rows,
        num_samples=n,
        block_rows=min(rows_per_task, n),
    )


def _compute_block(pipe: Pipeline, block: int) -> tuple[int, list[np.ndarray]]:
    # Runs in a joblib worker; module-level so that it pickles by reference.
    return block, batch_elements(pipe[block])[2]


def _create_partial(partial: str, digest: str, layout: CacheLayout) -> h5py.File:
    import h5py  # with the module: importing the pipeline package does not load h5py

    f = h5py.File(partial, "w")
    f.attrs[FORMAT_ATTR] = FORMAT
    f.attrs[FINGERPRINT_ATTR] = digest
    f.attrs[LAYOUT_ATTR] = layout.to_json()
    f.attrs[COMPLETE_ATTR] = False
    items = zip(layout.names, layout.shapes, layout.dtypes, layout.chunk_rows, strict=True)
    for name, shape, dtype, rows in items:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # see NOTE [ Cache file protocol ]
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # rows are valid once flagged done
        f.create_dataset(
            name, shape=(layout.num_samples, *shape), dtype=dtype, chunks=(rows, *shape), dcpl=dcpl
        )
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    f.create_dataset(DONE, shape=(layout.num_blocks,), dtype="u1", fillvalue=0, dcpl=dcpl)
    f.flush()
    return f


def _resume_or_create(partial: str, digest: str, plan: Callable[[], CacheLayout]) -> h5py.File:
    """Reopens this pipeline's partial file to resume it, or starts a new one."""
    import h5py

    if os.path.exists(partial):
        try:
            f = h5py.File(partial, "r+")
        except OSError as error:
            reason = f"it is not readable ({error})"
        else:
            if f.attrs.get(FINGERPRINT_ATTR) == digest and LAYOUT_ATTR in f.attrs and DONE in f:
                return f
            f.close()
            reason = "it was written for another pipeline"
        warnings.warn(f"discarding {partial}: {reason}", stacklevel=4)
        os.remove(partial)
    return _create_partial(partial, digest, plan())


def _check_block(arrays: list[np.ndarray], layout: CacheLayout, lo: int, hi: int) -> None:
    got = [(a.shape, str(a.dtype)) for a in arrays]
    want = [((hi - lo, *s), d) for s, d in zip(layout.shapes, layout.dtypes, strict=True)]
    if got != want:
        raise ValueError(
            f"the deterministic part gave (shape, dtype) {got} for samples {lo}:{hi}, "
            f"expected {want} from sample 0; transforms before the first random one "
            f"must map each sample on its own to a fixed shape and dtype"
        )


def _fill(
    f: h5py.File, seq: Pipeline, layout: CacheLayout, n_jobs: int, verbose: bool | None
) -> None:
    """Computes the blocks not yet flagged done, in parallel, and writes them here."""
    from joblib import Parallel, delayed, effective_n_jobs
    from tqdm.auto import tqdm

    done = f[DONE]
    todo = [int(b) for b in np.flatnonzero(done[()] == 0)]
    written = layout.num_samples - sum(hi - lo for lo, hi in map(layout.block_range, todo))
    pipe = deterministic_pipeline(seq, layout.block_rows)
    datasets = [f[name] for name in layout.names]
    in_flight = BLOCKS_IN_FLIGHT_PER_JOB * effective_n_jobs(n_jobs)
    bar = tqdm(
        total=layout.num_samples,
        initial=written,
        unit="sample",
        desc=f"cache {os.path.basename(f.filename).removesuffix('.partial')}",
        disable=None if verbose is None else not verbose,
    )
    with bar, Parallel(n_jobs=n_jobs, return_as="generator_unordered") as parallel:
        # Waves of at most `in_flight` blocks: joblib dispatches ahead of what the
        # parent has written, so the wave size is what bounds memory.
        for start in range(0, len(todo), in_flight):
            wave = todo[start : start + in_flight]
            for block, arrays in parallel(delayed(_compute_block)(pipe, b) for b in wave):
                lo, hi = layout.block_range(block)
                _check_block(arrays, layout, lo, hi)
                for dataset, array in zip(datasets, arrays, strict=True):
                    dataset[lo:hi] = array
                f.flush()  # the rows reach the file before their flag does
                done[block] = 1
                f.flush()
                bar.update(hi - lo)


def _finish(f: h5py.File, partial: str, path: str) -> None:
    f.attrs[COMPLETE_ATTR] = True
    f.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _read_layout(path: str, digest: str) -> CacheLayout:
    """Checks that ``path`` is a complete cache of ``digest`` and returns its layout."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{path} exists but is not a readable HDF5 file ({error}), so it is not a "
            f"seqpipe cache; delete it or cache to another path"
        ) from error
    with f:
        attrs = dict(f.attrs)
    if attrs.get(FORMAT_ATTR) != FORMAT:
        raise ValueError(
            f"{path} is an HDF5 file but not a seqpipe cache (no {FORMAT_ATTR}={FORMAT!r} "
            f"attribute); delete it or cache to another path"
        )
    if not attrs.get(COMPLETE_ATTR):
        raise ValueError(
            f"{path} is an incomplete seqpipe cache (writes go to {path}.partial and are "
            f"renamed when complete, so it was moved there by hand); delete it"
        )
    stored = attrs.get(FINGERPRINT_ATTR)
    if stored != digest:
        raise ValueError(
            f"cache {path} was written for fingerprint {stored}, but this pipeline's "
            f"deterministic part has fingerprint {digest}: its sources or transforms "
            f"changed. Delete the file to rebuild it, or cache to another path"
        )
    return CacheLayout.from_json(attrs[LAYOUT_ATTR])


def _cached_pipeline(seq: Pipeline, path: str, layout: CacheLayout) -> Pipeline:
    matrices = [_sources.HDF5Matrix(path, name) for name in layout.names]
    if layout.structure == SINGLE:
        sources: Any = matrices[0]
    elif layout.structure == TUPLE:
        sources = tuple(matrices)
    else:
        sources = dict(zip(layout.keys, matrices, strict=True))
    plan = seq.plan
    cached = Pipeline(
        sources,
        batch_size=plan.batch_size,
        shuffle=plan.shuffle,
        seed=plan.seed,
        drop_remainder=plan.drop_remainder,
    )
    for transform in split_transforms(seq)[1]:
        cached = cached | transform
    if seq.sharded:
        cached = cached.shard(plan.num_shards, plan.shard_index)
    cached.epoch = seq.epoch
    return cached


def check_cacheable(seq: Any, n_jobs: Any, writer: str) -> None:
    """Checks the arguments every decode-once writer takes.

    Raises:
        TypeError: if ``seq`` is not a `Pipeline`.
        ValueError: for a pipeline over a batch-level Sequence, or ``n_jobs`` not a
            non-zero integer.
    """
    if not isinstance(seq, Pipeline):
        raise TypeError(f"{writer} caches a Pipeline. Received: {seq!r}")
    if seq.structure == BATCHES:
        raise ValueError(
            f"cannot cache {seq!r}: it wraps a batch-level Sequence, which has no samples "
            f"to write; build the Pipeline from array-like sources instead"
        )
    if check_int("n_jobs", n_jobs, hint="Use a non-zero count (-1: all cores).") == 0:
        raise ValueError("n_jobs must be a non-zero integer (-1: all cores). Received: n_jobs=0")


def write_hdf5(
    seq: Pipeline,
    path: str | os.PathLike,
    n_jobs: int = -1,
    rows_per_task: int | None = None,
    verbose: bool | None = None,
) -> Pipeline:
    """Writes a pipeline's deterministic part to HDF5 once; returns a pipeline reading it.

    The deterministic part is the sources plus the transforms before the first random
    one (``transform.random`` true). Its samples are computed over blocks of rows with
    `joblib.Parallel` and written, unshuffled and unsharded, by this process into one
    dataset per batch element: ``"0"`` for a single array, ``"0"``, ``"1"``, ... for
    tuples, the keys for dicts; chunks hold one batch of rows. The returned pipeline
    reads them with `HDF5Matrix`, with the same batch size, shuffling, seed,
    ``drop_remainder`` and shard, then runs the remaining transforms: its batches equal
    ``seq``'s. Deterministic transforms must be sample-wise (a transform that looks at
    the whole batch would see write blocks instead of batches).

    A complete file with the same fingerprint (see `fingerprint`) is reused without
    computing anything. A killed write resumes from its last flushed block; readers
    never see a half-written file (NOTE [ Cache file protocol ]).

    Args:
        seq: a `Pipeline` over sample-level sources.
        path: the cache file; ``path + ".partial"`` and ``path + ".lock"`` sit beside it.
        n_jobs: joblib workers (``-1``: one per core; ``1``: in this process).
        rows_per_task: samples per block (one joblib task, the unit of resumption);
            ``None`` picks about 8 MB, at least 4 blocks per worker. A resumed write
            keeps the blocks it started with.
        verbose: show a tqdm progress bar; ``None`` shows it on a terminal only.

    Returns:
        A new `Pipeline` over `HDF5Matrix` sources of ``path``.

    Raises:
        ValueError: if ``path`` holds a cache with another fingerprint (both are named),
            a foreign or incomplete file, or a source or deterministic transform has no
            saveable config; or for a batch-level Sequence or bad arguments.
        TypeError: if ``seq`` is not a `Pipeline` or an element cannot be stored.

    Example:
        >>> import numpy as np, tempfile, os
        >>> seq = Pipeline((np.arange(10.0), np.arange(10) % 2), batch_size=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "cache.h5")
        >>> cached = write_hdf5(seq, path, n_jobs=1)
        >>> cached[1][0].tolist(), type(cached.sources[0]).__name__
        ([4.0, 5.0, 6.0, 7.0], 'HDF5Matrix')
    """
    from filelock import FileLock
    from joblib import effective_n_jobs

    check_cacheable(seq, n_jobs, "write_hdf5")
    if rows_per_task is not None:
        check_int("rows_per_task", rows_per_task, 1, hint="Or None to pick about 8 MB.")
    path = os.fspath(path)
    digest = fingerprint(seq)
    if not os.path.exists(path):
        with FileLock(path + ".lock"):
            if not os.path.exists(path):  # another process may have finished it meanwhile
                partial = path + ".partial"
                jobs = effective_n_jobs(n_jobs)
                f = _resume_or_create(
                    partial, digest, lambda: _plan_layout(seq, rows_per_task, jobs)
                )
                try:
                    _fill(f, seq, CacheLayout.from_json(f.attrs[LAYOUT_ATTR]), n_jobs, verbose)
                except BaseException:
                    f.close()
                    raise
                _finish(f, partial, path)
    return _cached_pipeline(seq, path, _read_layout(path, digest))


provide("Pipeline.cache", write_hdf5)
