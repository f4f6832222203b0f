"""Batch structure helpers: the sample axis of a batch, and per-sample weights added to it
the way Keras' ``fit`` reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# How a pipeline's sources form a batch: one array, a tuple, a dict, or the batches of a
# wrapped batch-level Sequence.
SINGLE, TUPLE, DICT, BATCHES = "single", "tuple", "dict", "batches"


def leading_dim(batch: Any) -> int:
    """Returns the number of samples in a batch (the leading axis of its first array).

    Raises:
        ValueError: if the batch holds no array.
    """
    if isinstance(batch, Mapping):
        items = list(batch.values())
    elif isinstance(batch, tuple | list):
        items = list(batch)
    else:
        return len(batch)
    for item in items:
        try:
            return leading_dim(item)
        except (TypeError, ValueError):
            continue
    raise ValueError(f"cannot find the sample axis of a batch of type {type(batch).__name__}")


def attach_weights(batch: Any, weights: np.ndarray) -> Any:
    """Adds per-sample weights to a batch, as Keras' ``fit`` expects them.

    ``(x, y)`` becomes ``(x, y, w)``; ``(x, y, w0)`` becomes ``(x, y, w0 * w)``; one array
    ``x`` becomes ``(x, w)``; a dict gains (or multiplies) ``"sample_weight"``.
    """
    if isinstance(batch, Mapping):
        old = batch.get("sample_weight")
        return {**batch, "sample_weight": weights if old is None else old * weights}
    if isinstance(batch, tuple | list):
        if len(batch) == 3:
            return (batch[0], batch[1], np.asarray(batch[2]) * weights)
        return (*batch, weights)
    return (batch, weights)
