"""Random photometric changes: `RandomBrightness` and `RandomContrast`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._image import check_images, check_value_range, clip_to, factor_range, saved_factor
from .base import RandomTransform


def _work_dtype(images: np.ndarray) -> np.dtype:
    # float64 stays float64; integers and smaller floats are computed in float32.
    return np.result_type(images.dtype, np.float32)


def _per_image(values: np.ndarray, images: np.ndarray) -> np.ndarray:
    return values.reshape((-1,) + (1,) * (images.ndim - 1)).astype(_work_dtype(images))


class RandomBrightness(RandomTransform):
    """Adds a random brightness offset to each image, like ``keras.layers.RandomBrightness``.

    Each image gets ``delta = uniform(lower, upper) * (high - low)`` added to every
    pixel (one vectorised draw of shape ``(batch,)``), and the result is clipped to
    ``value_range``. Output: the input's shape and dtype; integer images are rounded
    and clipped, so uint8 never wraps.

    Args:
        factor: a number ``f`` in ``[-1, 1]`` (offsets in ``[-|f|, |f|]``) or a
            ``(lower, upper)`` pair in ``[-1, 1]``; -1 makes an image black, 1 white.
        value_range: ``(low, high)`` of the pixel values, ``(0, 255)`` by default.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a factor or value range out of range.

    Example:
        >>> import numpy as np
        >>> out = RandomBrightness(0.5)(np.full((3, 2, 2, 3), 250, np.uint8), seed=0)
        >>> out.dtype, int(out.max()) <= 255
        (dtype('uint8'), True)
    """

    def __init__(
        self,
        factor: float | tuple[float, float],
        value_range: tuple[float, float] = (0, 255),
        on: int | str | None = None,
    ):
        super().__init__(on=on)
        self._range = factor_range("factor", factor, -1.0, 1.0)
        self.factor = saved_factor(factor)
        self.value_range = check_value_range(value_range)

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        low, high = self.value_range
        delta = rng.uniform(*self._range, size=len(images)) * (high - low)
        out = images.astype(_work_dtype(images)) + _per_image(delta, images)
        return clip_to(out, self.value_range, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "value_range": list(self.value_range), "on": self.on}


class RandomContrast(RandomTransform):
    """Scales each image's contrast by a random factor, like ``keras.layers.RandomContrast``.

    Each image gets a contrast factor ``c`` drawn uniformly from ``[1 - lower, 1 +
    upper]`` (one vectorised draw of shape ``(batch,)``); every channel of the image
    becomes ``(x - mean) * c + mean``, with ``mean`` the channel's mean over the image,
    clipped to ``value_range``. Output: the input's shape and dtype; integer images
    are rounded and clipped, so uint8 never wraps.

    Args:
        factor: a number ``f`` in ``[0, 1]`` (factors in ``[1 - f, 1 + f]``) or a
            ``(lower, upper)`` pair in ``[0, 1]``.
        value_range: ``(low, high)`` of the pixel values, ``(0, 255)`` by default.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a factor or value range out of range.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 4, 4, 1)
        >>> out = RandomContrast(0.5, value_range=(0, 1))(x, seed=0)
        >>> out.shape, out.dtype, bool(out.min() >= 0 and out.max() <= 1)
        ((2, 4, 4, 1), dtype('float32'), True)
    """

    def __init__(
        self,
        factor: float | tuple[float, float],
        value_range: tuple[float, float] = (0, 255),
        on: int | str | None = None,
    ):
        super().__init__(on=on)
        self._range = factor_range("factor", factor, 0.0, 1.0, single="same")
        self.factor = saved_factor(factor)
        self.value_range = check_value_range(value_range)

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        lower, upper = self._range
        factors = rng.uniform(1.0 - lower, 1.0 + upper, size=len(images))
        work = images.astype(_work_dtype(images))
        mean = work.mean(axis=(1, 2), keepdims=True)
        out = (work - mean) * _per_image(factors, images) + mean
        return clip_to(out, self.value_range, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "value_range": list(self.value_range), "on": self.on}
