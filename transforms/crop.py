"""Random crops: `RandomCrop` (fixed size) and `RandomResizedCrop` (the ImageNet crop)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._image import check_choice, check_images, check_size, is_number
from .base import RandomTransform
from .resize_kernels import resize_image

# `resize_image`'s interpolation orders (OpenCV nearest, bilinear, bicubic) by Keras' names.
INTERPOLATIONS = {"nearest": 0, "bilinear": 1, "bicubic": 3}
# Tries per image to find a box inside the image before the central fallback.
_ATTEMPTS = 10


def _check_crop(owner: Any, images: np.ndarray, height: int, width: int) -> None:
    if height > images.shape[1] or width > images.shape[2]:
        raise ValueError(
            f"{owner!r}: the crop ({height}, {width}) is larger than the images "
            f"({images.shape[1]}, {images.shape[2]}); crop to at most the image size "
            f"or resize first"
        )


def _check_interval(name: str, value: Any, positive_max: float | None) -> tuple[float, float]:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(map(is_number, value))
        and 0 < value[0] <= value[1]
        and (positive_max is None or value[1] <= positive_max)
    )
    if not ok:
        upper = "" if positive_max is None else f" <= {positive_max}"
        raise ValueError(
            f"{name} must be a (min, max) pair with 0 < min <= max{upper}. "
            f"Received: {name}={value!r}"
        )
    return float(value[0]), float(value[1])


class RandomCrop(RandomTransform):
    """Crops each image to ``(height, width)`` at a random place, like
    ``keras.layers.RandomCrop``.

    Every image gets its own offset (Keras uses one offset per batch); the offsets are
    two vectorised draws of shape ``(batch,)``. Output: ``(n, height, width[, c])`` of
    the input's dtype.

    Args:
        height: height of the crops.
        width: width of the crops.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a non-positive size, or (when called) images smaller than the
            crop.

    Example:
        >>> import numpy as np
        >>> RandomCrop(2, 3)(np.zeros((4, 5, 5, 3), np.uint8), seed=0).shape
        (4, 2, 3, 3)
    """

    def __init__(self, height: int, width: int, on: int | str | None = None):
        super().__init__(on=on)
        self.height = check_size("height", height)
        self.width = check_size("width", width)

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        _check_crop(self, images, self.height, self.width)
        n, h, w = images.shape[:3]
        tops = rng.integers(0, h - self.height + 1, size=n)
        lefts = rng.integers(0, w - self.width + 1, size=n)
        out = np.empty((n, self.height, self.width, *images.shape[3:]), dtype=images.dtype)
        for i, (top, left) in enumerate(zip(tops, lefts, strict=True)):
            out[i] = images[i, top : top + self.height, left : left + self.width]
        return out

    def get_config(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "on": self.on}


class RandomResizedCrop(RandomTransform):
    """Crops a random box of random area and aspect ratio and resizes it to
    ``(height, width)``: the standard ImageNet training crop.

    For each image, up to 10 boxes are tried (all drawn at once, shape ``(batch,
    10)``): an area of ``uniform(*scale)`` times the image's, an aspect ratio
    (width / height) log-uniform in ``ratio``; the first box that fits is placed
    uniformly at random. When none fits, the central crop with the aspect ratio
    clamped to ``ratio`` is used (as ``torchvision.transforms.RandomResizedCrop``
    does). The box is then resized by OpenCV (``resize_image``), with a Gaussian blur
    first when shrinking, as scikit-image anti-aliases, in the image's own dtype (uint8
    stays uint8; see NOTE [ Resize quality ] in ``transforms/resize_kernels.py``).
    Output: ``(n, height, width[, c])`` of the input's dtype.

    Args:
        height: output height.
        width: output width.
        scale: ``(min, max)`` fraction of the image's area a box covers, in ``(0, 1]``.
        ratio: ``(min, max)`` aspect ratio (width / height) of a box, positive.
        interpolation: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a bad size, ``scale``, ``ratio`` or ``interpolation``.

    Example:
        >>> import numpy as np
        >>> crop = RandomResizedCrop(4, 4, scale=(0.5, 1.0))
        >>> crop(np.zeros((2, 16, 12, 3), np.uint8), seed=0).shape
        (2, 4, 4, 3)
    """

    def __init__(
        self,
        height: int,
        width: int,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        on: int | str | None = None,
    ):
        super().__init__(on=on)
        self.height = check_size("height", height)
        self.width = check_size("width", width)
        self.scale = _check_interval("scale", scale, 1.0)
        self.ratio = _check_interval("ratio", ratio, None)
        self.interpolation = check_choice("interpolation", interpolation, list(INTERPOLATIONS))

    def boxes(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        """Draws one box per image: an int array ``(n, 4)`` of ``top, left, height, width``."""
        areas = h * w * rng.uniform(*self.scale, size=(n, _ATTEMPTS))
        log_ratio = rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, _ATTEMPTS))
        ratios = np.exp(log_ratio)
        widths = np.rint(np.sqrt(areas * ratios)).astype(np.int64)
        heights = np.rint(np.sqrt(areas / ratios)).astype(np.int64)
        fits = (widths > 0) & (heights > 0) & (widths <= w) & (heights <= h)
        first = fits.argmax(axis=1)
        rows = np.arange(n)
        found = fits[rows, first]
        fallback_h, fallback_w = self._central_box(h, w)
        box_h = np.where(found, heights[rows, first], fallback_h)
        box_w = np.where(found, widths[rows, first], fallback_w)
        where = rng.random((n, 2))
        tops = np.where(found, (where[:, 0] * (h - box_h + 1)).astype(np.int64), (h - box_h) // 2)
        lefts = np.where(found, (where[:, 1] * (w - box_w + 1)).astype(np.int64), (w - box_w) // 2)
        return np.stack([tops, lefts, box_h, box_w], axis=1)

    def _central_box(self, h: int, w: int) -> tuple[int, int]:
        image_ratio = w / h
        if image_ratio < self.ratio[0]:
            return min(h, max(1, round(w / self.ratio[0]))), w
        if image_ratio > self.ratio[1]:
            return h, min(w, max(1, round(h * self.ratio[1])))
        return h, w

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        n, h, w = images.shape[:3]
        size = (self.height, self.width)
        order = INTERPOLATIONS[self.interpolation]
        out = np.empty((n, *size, *images.shape[3:]), dtype=images.dtype)
        for i, (top, left, box_h, box_w) in enumerate(self.boxes(rng, n, h, w)):
            out[i] = resize_image(images[i, top : top + box_h, left : left + box_w], size, order)
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "interpolation": self.interpolation,
            "on": self.on,
        }
