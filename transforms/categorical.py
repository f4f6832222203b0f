"""One-hot encoding: `to_categorical` (the Keras 2 function) and `ToCategorical`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Transform


def to_categorical(y: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """Converts a class vector (integers) to a binary class matrix.

    Args:
        y: class labels, integers from 0 to ``num_classes - 1``, any shape; a trailing
            axis of size 1 (shape ``(n, 1)``) is dropped first.
        num_classes: total number of classes; ``None`` means ``max(y) + 1``.
        dtype: dtype of the result.

    Returns:
        An array of shape ``y.shape + (num_classes,)`` with the classes axis last.

    Raises:
        ValueError: for negative labels, labels ``>= num_classes``, non-integral
            labels, or an empty ``y`` without ``num_classes``.

    Example:
        >>> to_categorical([0, 2], num_classes=3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
            raise ValueError(f"labels must be integers. Received non-integral labels: {y}")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers. Received dtype {y.dtype}")
    y = y.astype(np.int64)
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = y.ravel()
    if num_classes is None:
        if flat.size == 0:
            raise ValueError("to_categorical of an empty array needs num_classes")
        num_classes = int(flat.max()) + 1
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer. Received: {num_classes!r}")
    num_classes = int(num_classes)
    if flat.size:
        low, high = int(flat.min()), int(flat.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"label {bad} is out of range [0, {num_classes}) for num_classes={num_classes}"
            )
    out = np.zeros((flat.size, num_classes), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape((*shape, num_classes))


class ToCategorical(Transform):
    """Transform form of `to_categorical`.

    ``num_classes`` is required: one batch need not contain the largest class.

    Args:
        num_classes: total number of classes.
        dtype: dtype of the one-hot output.
        on: tuple index or dict key of the labels.

    Example:
        >>> import numpy as np
        >>> ToCategorical(3, on=1)((np.zeros(2), np.array([2, 0])))[1].tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def __init__(self, num_classes: int, dtype: str = "float32", on: int | str | None = None):
        super().__init__(on=on)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1. Received: {num_classes!r}")
        self.num_classes = num_classes
        self.dtype = str(np.dtype(dtype))

    def call(self, x: Any) -> np.ndarray:
        return to_categorical(x, self.num_classes, self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "dtype": self.dtype, "on": self.on}
