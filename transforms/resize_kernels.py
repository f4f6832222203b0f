"""OpenCV resizing kernels: scikit-image's anti-aliased resize, computed in the input dtype.

NOTE [ Resize quality ]
Shrinking is anti-aliased the way ``skimage.transform.resize(anti_aliasing=True)``
does it: a Gaussian blur with sigma ``(scale - 1) / 2`` on each shrinking axis (mirror
edges; truncated at 4 sigma, 3 for uint8), then interpolation at pixel centres
(``order`` 0, 1, 3: nearest, bilinear, bicubic). Both steps run in OpenCV's vectorised
kernels, in the image's own dtype. uint8 stays uint8, rounded after the blur and after
the interpolation: within 0.5 grey levels of scikit-image on average, at most 2.
float32 is within 1e-4 of scikit-image on a 0-255 scale, float64 within 1e-6 on a 0-1
scale (``tests/transforms/test_resize.py``). ``anti_aliasing=False`` skips the blur:
plain bilinear sampling of the two nearest rows and columns, which is what
``tf.image.resize`` and ``keras.utils.image_dataset_from_directory`` do by default
(faster; aliased when shrinking, and pixels are skipped beyond 2x). Pillow's resize
(like ``tf.image.resize(antialias=True)``) widens the interpolation filter instead of
blurring: about one grey level from scikit-image, and 2-3x slower than this kernel
(``benchmarks/images.py``). Bicubic is OpenCV's cubic convolution (a = -0.75), not
scikit-image's cubic spline; nearest may pick the other neighbour on exact ties.
"""

from __future__ import annotations

import math

import numpy as np

from .._core.opencv import opencv

# Dtypes OpenCV filters and resizes natively; others go through float64.
_NATIVE = frozenset(np.dtype(t) for t in ("uint8", "uint16", "int16", "float32", "float64"))
# Gaussian radius in sigmas: scipy.ndimage.gaussian_filter's 4 for exact float results;
# 3 for uint8, whose rounding hides the 0.3 % of weight cut off (same mean difference
# to scikit-image, 0.275 grey levels on the benchmark's photos, and 20 % faster).
_TRUNCATE = {np.dtype(np.uint8): 3.0}
_TRUNCATE_FLOAT = 4.0
INTERPOLATION_ORDERS = (0, 1, 3)


def antialias_sigmas(
    input_shape: tuple[int, int], output_shape: tuple[int, int]
) -> tuple[float, float]:
    """scikit-image's anti-aliasing sigmas ``(sigma_y, sigma_x)``: 0 where not shrinking.

    Example:
        >>> antialias_sigmas((448, 100), (224, 200))
        (0.5, 0.0)
    """
    return tuple(max(0.0, (i / o - 1) / 2) for i, o in zip(input_shape, output_shape, strict=True))


def _kernel_size(sigma: float, dtype: np.dtype) -> int:
    return 2 * math.ceil(_TRUNCATE.get(dtype, _TRUNCATE_FLOAT) * sigma) + 1 if sigma > 0 else 1


def resize_image(
    image: np.ndarray,
    output_shape: tuple[int, int],
    order: int = 1,
    anti_aliasing: bool = True,
) -> np.ndarray:
    """Resizes one ``(h, w)`` or ``(h, w, c)`` image, keeping its dtype.

    See NOTE [ Resize quality ]. Integer dtypes OpenCV does not filter natively are
    computed in float64 and rounded back.

    Args:
        image: one image.
        output_shape: ``(height, width)``.
        order: 0 (nearest), 1 (bilinear) or 3 (bicubic).
        anti_aliasing: blur before shrinking, as scikit-image does.

    Returns:
        The resized image, of ``image``'s dtype and channel count.

    Example:
        >>> resize_image(np.zeros((4, 6, 3), np.uint8), (2, 3)).shape
        (2, 3, 3)
    """
    cv2 = opencv()
    height, width = output_shape
    if image.shape[:2] == (height, width):
        return image
    work = image if image.dtype in _NATIVE else image.astype(np.float64)
    if anti_aliasing:
        sigma_y, sigma_x = antialias_sigmas(image.shape[:2], output_shape)
        if sigma_y or sigma_x:
            size = (_kernel_size(sigma_x, work.dtype), _kernel_size(sigma_y, work.dtype))
            work = cv2.GaussianBlur(
                work, size, sigmaX=sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_REFLECT_101
            )
    interpolation = {0: cv2.INTER_NEAREST_EXACT, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}[order]
    out = cv2.resize(work, (width, height), interpolation=interpolation)
    if out.ndim < image.ndim:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return cast_result(out, image.dtype)


def cast_result(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Casts resized values to ``dtype``: integers are rounded and clipped to its range."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    if dtype.kind in "iu" and values.dtype.kind == "f":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def resize_batch(
    images: np.ndarray,
    output_shape: tuple[int, int],
    order: int = 1,
    anti_aliasing: bool = True,
) -> np.ndarray:
    """Resizes a batch ``(n, h, w)`` or ``(n, h, w, c)`` image by image, keeping its dtype.

    One OpenCV call per image measured faster than one call on the batch laid out as
    channels (``benchmarks/images.py``).

    Example:
        >>> resize_batch(np.zeros((2, 4, 4), np.uint8), (2, 2)).shape
        (2, 2, 2)
    """
    out = np.empty((len(images), *output_shape, *images.shape[3:]), dtype=images.dtype)
    for i, image in enumerate(images):
        out[i] = resize_image(image, output_shape, order, anti_aliasing)
    return out
