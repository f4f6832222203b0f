"""Image resizing over a whole batch: `resize` and `Resize` (OpenCV, or scikit-image).

NOTE [ Which resize path runs ]
OpenCV (``transforms/resize_kernels.py``) computes scikit-image's result for spline
``order`` 0, 1 and 3 (3 as cubic convolution), every ``anti_aliasing`` setting, and
``preserve_range=True`` or float input: uint8 images are resized in uint8 when the
result is uint8 (no float round trip), in float32 when the result is float. Everything
else goes to ``skimage.transform.resize`` (imported on first use, with scipy): orders
2, 4 and 5, and integer images rescaled to ``[0, 1]`` (``preserve_range=False``). See
NOTE [ Resize quality ] for the filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Transform
from .resize_kernels import INTERPOLATION_ORDERS, cast_result, resize_batch


def _check_shape(output_shape: Any) -> tuple[int, int]:
    shape = tuple(output_shape) if isinstance(output_shape, list | tuple) else None
    if (
        shape is None
        or len(shape) != 2
        or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in shape
        )
    ):
        raise ValueError(
            f"output_shape must be (height, width) of positive ints. Received: {output_shape!r}"
        )
    return int(shape[0]), int(shape[1])


def resize(
    images: Any,
    output_shape: tuple[int, int],
    order: int = 1,
    anti_aliasing: bool | None = None,
    preserve_range: bool = True,
    dtype: Any = "float32",
) -> np.ndarray:
    """Resizes a batch of images ``(n, h, w)`` or ``(n, h, w, c)``.

    OpenCV resizes image by image, anti-aliased as scikit-image does (uint8 stays
    uint8); orders 2, 4, 5 and ``preserve_range=False`` on integers take one
    `skimage.transform.resize` call whose scale is 1 on the sample and channel axes
    (see NOTE [ Which resize path runs ]). No image bleeds into another.

    Args:
        images: batch with samples on axis 0.
        output_shape: ``(height, width)`` of the result.
        order: spline order (0 nearest, 1 bilinear, 3 bicubic: OpenCV; 2, 4, 5:
            scikit-image).
        anti_aliasing: Gaussian smoothing before down-scaling; ``None`` smooths
            unless ``order == 0`` on integer images (scikit-image's rule).
            ``False`` samples without smoothing, as ``tf.image.resize`` does by
            default: faster, aliased when shrinking.
        preserve_range: keep the input's value range (``True``) or rescale integer
            images to ``[0, 1]`` as scikit-image does.
        dtype: dtype of the result (float32 by default); ``None`` keeps the input's
            dtype (float64 for integer input with ``preserve_range=False``). Integer
            results are rounded and clipped.

    Returns:
        An array of shape ``(n, height, width) + images.shape[3:]``.

    Raises:
        ValueError: if ``images`` is not 3-d or 4-d or ``output_shape`` is malformed.

    Example:
        >>> resize(np.ones((2, 4, 4, 3), "uint8"), (2, 2)).shape
        (2, 2, 2, 3)
        >>> resize(np.full((1, 4, 4), 7, "uint8"), (2, 2), dtype=None).dtype
        dtype('uint8')
    """
    output_shape = _check_shape(output_shape)
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"resize expects a batch of shape (n, h, w) or (n, h, w, c). "
            f"Received shape {images.shape}"
        )
    if (
        order in INTERPOLATION_ORDERS
        and images.dtype.kind in "uif"
        and (preserve_range or images.dtype.kind == "f")
    ):
        if anti_aliasing is None:  # scikit-image's rule
            anti_aliasing = not (order == 0 and images.dtype.kind in "ui")
        if dtype is not None and np.dtype(dtype).kind == "f" and images.dtype.kind != "f":
            # A float result is computed in float, as scikit-image would, not rounded.
            images = images.astype(np.float32 if np.dtype(dtype).itemsize <= 4 else np.float64)
        out = resize_batch(images, output_shape, order, anti_aliasing)
    else:
        # Imported on first use: scikit-image pulls in scipy, a third of a second.
        from skimage.transform import resize as sk_resize

        target = (images.shape[0], *output_shape, *images.shape[3:])
        out = sk_resize(
            images,
            target,
            order=order,
            anti_aliasing=anti_aliasing,
            preserve_range=preserve_range,
        )
        if dtype is None and preserve_range:
            dtype = images.dtype
    return out if dtype is None else cast_result(out, dtype)


class Resize(Transform):
    """Transform form of `resize`.

    Args:
        output_shape: ``(height, width)``.
        order: spline order.
        anti_aliasing: as in `resize`.
        preserve_range: as in `resize`.
        dtype: result dtype (float32 by default; ``None`` or ``"uint8"`` keeps uint8
            images in uint8 end to end).
        on: tuple index or dict key of the images.

    Example:
        >>> Resize((2, 2), on=0)((np.ones((1, 4, 4)), 0))[0].shape
        (1, 2, 2)
    """

    def __init__(
        self,
        output_shape: tuple[int, int],
        order: int = 1,
        anti_aliasing: bool | None = None,
        preserve_range: bool = True,
        dtype: str | None = "float32",
        on: int | str | None = None,
    ):
        super().__init__(on=on)
        self.output_shape = _check_shape(output_shape)
        self.order = order
        self.anti_aliasing = anti_aliasing
        self.preserve_range = preserve_range
        self.dtype = None if dtype is None else str(np.dtype(dtype))

    def call(self, x: Any) -> np.ndarray:
        return resize(
            x, self.output_shape, self.order, self.anti_aliasing, self.preserve_range, self.dtype
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "output_shape": list(self.output_shape),
            "order": self.order,
            "anti_aliasing": self.anti_aliasing,
            "preserve_range": self.preserve_range,
            "dtype": self.dtype,
            "on": self.on,
        }
