"""How a pipeline's sources form its batches: one source, a tuple or a dict of them
(nested ones wrapped in a `sources.NestedSource`), or a batch-level `Sequence`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..sources.nested import nest
from .batches import BATCHES, DICT, SINGLE, TUPLE
from .sequence import Sequence


def _is_batch_level(source: Any) -> bool:
    # Keras Sequences/PyDatasets and our own all have on_epoch_end; arrays do not.
    return isinstance(source, Sequence) or hasattr(source, "on_epoch_end")


def _length(name: str, source: Any) -> int:
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        raise TypeError(
            f"source {name} must be array-like (len and __getitem__). Received: {source!r}"
        )
    return len(source)


def _common_length(lengths: dict[Any, int]) -> int:
    if not lengths:
        raise ValueError("Pipeline needs at least one source")
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all sources must have the same length. Received lengths {lengths}")
    return next(iter(lengths.values()))


def arrange_sources(sources: Any) -> tuple[Any, str, int]:
    """Returns ``(sources, structure, samples)`` for a pipeline's ``sources`` argument.

    Args:
        sources: one source, a tuple or list, a dict, or a batch-level `Sequence`.

    Returns:
        The sources as the pipeline keeps them (a tuple or dict, nested structures
        wrapped), their structure (``'single'``, ``'tuple'``, ``'dict'``, ``'batches'``)
        and their common length.

    Raises:
        ValueError: if the sources are empty or of different lengths.
        TypeError: if a source is not array-like.

    Example:
        >>> arrange_sources((np.arange(3), {"a": np.arange(3)}))[1:]
        ('tuple', 3)
    """
    if _is_batch_level(sources):
        structure, length = BATCHES, _length("sequence", sources)
    elif isinstance(sources, Mapping):
        structure = DICT
        sources = {k: nest(s) for k, s in sources.items()}
        length = _common_length({k: _length(repr(k), s) for k, s in sources.items()})
    elif isinstance(sources, tuple | list):
        structure = TUPLE
        sources = tuple(nest(s) for s in sources)
        length = _common_length({i: _length(str(i), s) for i, s in enumerate(sources)})
    else:
        structure, length = SINGLE, _length("0", sources)
    if length == 0:
        raise ValueError(f"sources must hold at least one sample. Received: {sources!r}")
    return sources, structure, length


def read_sources(
    sources: Any,
    structure: str,
    key: Any,
    out: Any = None,
    clock: Callable[[int, Any], None] | None = None,
) -> Any:
    """Reads ``key`` (a slice or sample ids) from every source, in their structure.

    Args:
        sources: the sources, as `arrange_sources` keeps them (not a batch-level one).
        structure: ``'single'``, ``'tuple'`` or ``'dict'``.
        key: what each source is indexed with.
        out: arrays to read into, in the same structure (sources with ``read_into`` fill
            them in place, others are copied in), or ``None`` for new arrays.
        clock: called as ``clock(i, part)`` after the ``i``-th source is read (NOTE [
            Stage clock ] in ``pipeline/batch_making.py``).

    Returns:
        One array, a tuple or a dict of them.
    """
    stage = itertools.count()

    def read(source: Any, target: np.ndarray | None) -> Any:
        if target is None:
            part = source[key]
        elif hasattr(source, "read_into"):
            part = source.read_into(key, target)
        else:
            np.copyto(target, source[key], casting="no")
            part = target
        if clock is not None:
            clock(next(stage), part)
        return part

    if structure == SINGLE:
        return read(sources, out)
    if structure == TUPLE:
        return tuple(map(read, sources, (None,) * len(sources) if out is None else out))
    return {k: read(s, None if out is None else out[k]) for k, s in sources.items()}


def leaves(sources: Any, structure: str) -> list[Any]:
    """The pipeline's top-level sources, in order (one for ``'single'``)."""
    if structure == DICT:
        return list(sources.values())
    return list(sources) if structure == TUPLE else [sources]


def chunks_of(sources: Any, structure: str) -> tuple[int, ...]:
    """The chunks (first sample ids) of the first source that has them, for
    ``shuffle='window'``.

    Raises:
        ValueError: if no source has ``chunks``.
    """
    for source in leaves(sources, structure):
        chunks = getattr(source, "chunks", None)
        if chunks is not None:
            return tuple(np.asarray(chunks).tolist())
    raise ValueError(
        f"shuffle='window' permutes the chunks of a chunked source (TFRecordSource, "
        f"WebDatasetSource, ParquetSource: a `chunks` array of first sample ids), and "
        f"no source here has them. Received: {sources!r}"
    )
