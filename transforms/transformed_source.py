"""``source | transform``: an array-like source whose every read is transformed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core.indexing import check_index, check_indices
from .randomness import source_random


class ArraySource:
    """Mixin for array-like sources: ``source | transform`` returns a wrapped source."""

    def __or__(self, transform: Callable) -> TransformedSource:
        return TransformedSource(self, transform)


class TransformedSource(ArraySource):
    """An array-like source whose every read goes through ``transform``.

    A random transform (``transform.random``) gets a generator keyed by the sample ids
    read, so reading the same ids gives the same augmentation, whatever the epoch; put
    random transforms on the `pipeline.Pipeline` instead to vary them by epoch.

    Args:
        source: anything with ``len`` and int/slice/index-array ``__getitem__``.
        transform: callable applied to each slice read (and to single samples).

    Raises:
        TypeError: if ``source`` is not array-like or ``transform`` is not callable.

    Example:
        >>> doubled = TransformedSource(np.arange(4), lambda x: x * 2)
        >>> doubled[1:3].tolist()
        [2, 4]
    """

    def __init__(self, source: Any, transform: Callable) -> None:
        if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(f"a source needs __len__ and __getitem__. Received: {source!r}")
        if not callable(transform):
            raise TypeError(f"expected a callable transform. Received: {transform!r}")
        self.source = source
        self.transform = transform
        # This transform's rank among the random transforms of ``source | t1 | t2 ...``:
        # chained random transforms draw independent numbers.
        self._position = getattr(source, "_random_depth", 0)
        self._random_depth = self._position + bool(getattr(transform, "random", False))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: Any) -> Any:
        if not getattr(self.transform, "random", False):
            return self.transform(self.source[key])
        # A random transform draws per sample read (NOTE [ Augmentation keys ] in
        # transforms/randomness.py): a sample's augmentation does not depend on the
        # other samples read with it. A single sample is read as a batch of one.
        ids = self._ids(key)
        single = isinstance(key, int | np.integer)
        data = self.source[ids if single else key]
        out = self.transform(data, rng=source_random(self.transform, self._position, ids))
        return out[0] if single else out

    def _ids(self, key: Any) -> np.ndarray:
        length = len(self.source)
        if isinstance(key, slice):
            return np.arange(*key.indices(length), dtype=np.int64)
        if isinstance(key, int | np.integer):
            return np.array([check_index(key, length)], dtype=np.int64)
        return check_indices(key, length)

    def __repr__(self) -> str:
        return f"TransformedSource({self.source!r} | {self.transform!r})"
