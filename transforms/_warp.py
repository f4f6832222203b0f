"""Affine warps of image batches in numpy, with Keras' fill modes.

Each output pixel ``(x, y)`` samples the input at ``matrix @ (x, y, 1)`` (a matrix
maps output coordinates to input coordinates, as in Keras' ``affine_transform``).
Bilinear interpolation reads the four neighbouring pixels; a neighbour outside the
image is found by the fill mode: ``reflect`` ``(d c b a | a b c d | d c b a)``,
``wrap`` ``(a b c d | a b c d)``, ``nearest`` ``(a a | a b c d | d d)``, or
``constant`` (``fill_value``). For the same matrices this is Keras' (TensorFlow's)
output to 1e-4 (``tests/transforms/test_augment.py``), except that ``wrap`` here
interpolates across the seam between the last and the first pixel.
"""

from __future__ import annotations

import numpy as np

from .resize_kernels import cast_result

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def _fold(index: np.ndarray, size: int, fill_mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Maps integer pixel indices into ``[0, size)``; returns them and, for ``constant``,
    the mask of indices that were inside."""
    if fill_mode == "reflect":
        folded = np.mod(index, 2 * size)
        return np.where(folded >= size, 2 * size - 1 - folded, folded), None
    if fill_mode == "wrap":
        return np.mod(index, size), None
    clipped = np.clip(index, 0, size - 1)
    if fill_mode == "nearest":
        return clipped, None
    return clipped, (index >= 0) & (index < size)


def _gather(
    image: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill_mode: str, fill_value: float
) -> np.ndarray:
    h, w = image.shape[:2]
    rows, row_inside = _fold(ys, h, fill_mode)
    cols, col_inside = _fold(xs, w, fill_mode)
    values = image[rows, cols].astype(np.float32)
    if row_inside is not None:
        outside = ~(row_inside & col_inside)
        values[outside] = fill_value
    return values


def _warp_one(
    image: np.ndarray, matrix: np.ndarray, interpolation: str, fill_mode: str, fill_value: float
) -> np.ndarray:
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    src_x = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    src_y = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    if interpolation == "nearest":
        rows = np.floor(src_y + 0.5).astype(np.int64)
        cols = np.floor(src_x + 0.5).astype(np.int64)
        return _gather(image, rows, cols, fill_mode, fill_value)
    y0 = np.floor(src_y)
    x0 = np.floor(src_x)
    wy = src_y - y0
    wx = src_x - x0
    if image.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    y0 = y0.astype(np.int64)
    x0 = x0.astype(np.int64)
    top = _gather(image, y0, x0, fill_mode, fill_value) * (1 - wx)
    top += _gather(image, y0, x0 + 1, fill_mode, fill_value) * wx
    bottom = _gather(image, y0 + 1, x0, fill_mode, fill_value) * (1 - wx)
    bottom += _gather(image, y0 + 1, x0 + 1, fill_mode, fill_value) * wx
    return top * (1 - wy) + bottom * wy


def affine_warp(
    images: np.ndarray,
    matrices: np.ndarray,
    interpolation: str = "bilinear",
    fill_mode: str = "reflect",
    fill_value: float = 0.0,
) -> np.ndarray:
    """Warps each image ``(h, w[, c])`` of a batch by its own 2x3 matrix.

    Args:
        images: ``(n, h, w)`` or ``(n, h, w, c)``.
        matrices: ``(n, 2, 3)``, output ``(x, y, 1)`` to input ``(x, y)``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"constant"`` or ``"nearest"``.
        fill_value: the value outside the image for ``"constant"``.

    Returns:
        The warped batch, of the input's shape and dtype (integers rounded and clipped).

    Example:
        >>> shift = np.array([[[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
        >>> affine_warp(np.arange(3.0).reshape(1, 1, 3), shift, fill_mode="nearest")
        array([[[0., 0., 1.]]])
    """
    out = np.empty_like(images)
    for i, (image, matrix) in enumerate(zip(images, matrices, strict=True)):
        out[i] = cast_result(
            _warp_one(image, matrix, interpolation, fill_mode, fill_value), images.dtype
        )
    return out
