"""`NestedSource`: a tuple or dict of sources read together, for nested batches such as
``(x, {"reg": y1, "cls": y2})`` (the targets of a model with several outputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..transforms import ArraySource


class NestedSource(ArraySource):
    """Sources of equal length read with one key: a read gives their structure back.

    `Pipeline` wraps the tuple, list or dict elements of its sources in one, so
    ``Pipeline((x, {"reg": y1, "cls": y2}))`` gives ``(x, {"reg": ..., "cls": ...})``
    batches. Nested structures nest.

    Args:
        sources: a tuple or list (reads are tuples) or a dict (reads are dicts) of
            array-like sources, or of further tuples and dicts.

    Raises:
        ValueError: if the sources are empty or of different lengths.
        TypeError: if a leaf is not array-like.

    Example:
        >>> import numpy as np
        >>> pair = NestedSource({"a": np.arange(4), "b": np.arange(4) * 10})
        >>> pair[1:3]
        {'a': array([1, 2]), 'b': array([10, 20])}
    """

    def __init__(self, sources: Any) -> None:
        if isinstance(sources, Mapping):
            self.sources: Any = {k: nest(s) for k, s in sources.items()}
            items = self.sources.items()
        else:
            self.sources = tuple(nest(s) for s in sources)
            items = enumerate(self.sources)
        lengths = {}
        for key, source in items:
            if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
                raise TypeError(f"source {key!r} must be array-like. Received: {source!r}")
            lengths[key] = len(source)
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(
                f"nested sources must be non-empty, of one length. Received lengths {lengths}"
            )
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, key: Any) -> Any:
        if isinstance(self.sources, dict):
            return {name: source[key] for name, source in self.sources.items()}
        return tuple(source[key] for source in self.sources)

    def __repr__(self) -> str:
        return f"NestedSource({self.sources!r})"


def nest(source: Any) -> Any:
    """``source``, or a `NestedSource` over it when it is a tuple, list or dict."""
    return NestedSource(source) if isinstance(source, tuple | list | Mapping) else source
