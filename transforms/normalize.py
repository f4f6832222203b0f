"""L-p normalisation: `normalize` (the Keras 2 function) and `Normalize`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Transform


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """Normalizes an array along one axis to unit L-``order`` norm.

    Args:
        x: array to normalize (integers are promoted to float64).
        axis: axis along which to normalize.
        order: normalization order (2 for the L2 norm), as in `numpy.linalg.norm`.

    Returns:
        A normalized copy of ``x``; vectors of norm 0 stay 0 (never NaN).

    Example:
        >>> normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        x = x.astype(np.float64)
    norms = np.atleast_1d(np.linalg.norm(x, order, axis))
    norms[norms == 0] = 1
    return x / np.expand_dims(norms, axis)


class Normalize(Transform):
    """Transform form of `normalize`.

    Args:
        axis: axis along which to normalize (``-1``: features of each sample).
        order: normalization order.
        on: tuple index or dict key of the element to normalize.

    Example:
        >>> import numpy as np
        >>> Normalize(on=0)((np.array([[0.0, 2.0]]), 1))[0].tolist()
        [[0.0, 1.0]]
    """

    def __init__(self, axis: int = -1, order: int = 2, on: int | str | None = None):
        super().__init__(on=on)
        self.axis = axis
        self.order = order

    def call(self, x: Any) -> np.ndarray:
        if self.axis == 0 or (np.ndim(x) and self.axis == -np.ndim(x)):
            raise ValueError(
                f"Normalize(axis={self.axis}) would normalize across samples; pick a "
                f"feature axis (batch arrays keep samples on axis 0)"
            )
        return normalize(x, self.axis, self.order)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "order": self.order, "on": self.on}
