"""Random affine augmentations: `RandomRotation`, `RandomZoom`, `RandomTranslation`.

Each draws its per-image parameters in one vectorised call and warps the batch with
`transforms._warp.affine_warp` (numpy), which fills the area outside the image by
Keras' fill modes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._image import check_choice, check_images, factor_range, is_number, saved_factor
from ._warp import FILL_MODES, INTERPOLATIONS, affine_warp
from .base import RandomTransform


def _about_center(linear: np.ndarray, h: int, w: int) -> np.ndarray:
    """Matrices ``(n, 2, 3)`` applying ``linear`` ``(n, 2, 2)`` about the image center."""
    center = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = center - linear @ center
    return np.concatenate([linear, offset[:, :, None]], axis=2)


class _AffineTransform(RandomTransform):
    """Shared by the affine augmentations: fill mode, interpolation, the warp."""

    def __init__(
        self,
        fill_mode: str,
        interpolation: str,
        fill_value: float,
        on: int | str | None,
    ) -> None:
        super().__init__(on=on)
        self.fill_mode = check_choice("fill_mode", fill_mode, FILL_MODES)
        self.interpolation = check_choice("interpolation", interpolation, INTERPOLATIONS)
        if not is_number(fill_value):
            raise ValueError(f"fill_value must be a number. Received: fill_value={fill_value!r}")
        self.fill_value = float(fill_value)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        """Draws ``(n, 2, 3)`` matrices mapping output to input coordinates."""
        raise NotImplementedError

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        n, h, w = images.shape[:3]
        matrices = self.matrices(rng, n, h, w)
        return affine_warp(images, matrices, self.interpolation, self.fill_mode, self.fill_value)

    def factors(self) -> dict[str, Any]:
        """The subclass's own arguments, for `get_config`."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            **self.factors(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "on": self.on,
        }


class RandomRotation(_AffineTransform):
    """Rotates each image by a random angle about its center, like
    ``keras.layers.RandomRotation``.

    Angles are ``uniform(lower, upper) * 2 pi``, one vectorised draw of shape
    ``(batch,)``; positive angles rotate counter-clockwise. Output: the input's shape
    and dtype (integers rounded and clipped).

    Args:
        factor: a number ``f`` in ``[-1, 1]`` (angles in ``[-|f|, |f|]`` turns) or a
            ``(lower, upper)`` pair of fractions of a full turn.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_value: the value outside the image for ``fill_mode="constant"``.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a factor out of range or an unknown mode.

    Example:
        >>> import numpy as np
        >>> quarter = RandomRotation((0.25, 0.25), interpolation="nearest")
        >>> quarter(np.array([[[0, 1], [2, 3]]]), seed=0)[0].tolist()
        [[1, 3], [0, 2]]
    """

    def __init__(
        self,
        factor: float | tuple[float, float],
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        on: int | str | None = None,
    ):
        super().__init__(fill_mode, interpolation, fill_value, on)
        self._range = factor_range("factor", factor, -1.0, 1.0)
        self.factor = saved_factor(factor)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        angles = rng.uniform(*self._range, size=n) * 2 * math.pi
        cos, sin = np.cos(angles), np.sin(angles)
        # Output to input: rotating the content counter-clockwise (y points down)
        # means sampling the input clockwise.
        linear = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
        return _about_center(linear, h, w)

    def factors(self) -> dict[str, Any]:
        return {"factor": self.factor}


class RandomZoom(_AffineTransform):
    """Zooms each image in or out about its center, like ``keras.layers.RandomZoom``.

    Zoom factors are ``1 + uniform(lower, upper)`` for height (and width), drawn in
    one vectorised call of shape ``(batch,)`` each; a positive factor zooms out (the
    image shrinks, the border is filled), a negative one zooms in. ``width_factor=None``
    keeps the aspect ratio. Output: the input's shape and dtype.

    Args:
        height_factor: a number ``f`` in ``[-1, 1]`` (``[-|f|, |f|]``) or a
            ``(lower, upper)`` pair.
        width_factor: the same for the width, or ``None`` to reuse the height's draw.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_value: the value outside the image for ``fill_mode="constant"``.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a factor out of range or an unknown mode.

    Example:
        >>> import numpy as np
        >>> out = RandomZoom((1.0, 1.0), fill_mode="constant")(np.ones((1, 4, 4)), seed=0)
        >>> out[0].tolist()  # zoomed out by 2: the image covers the middle half
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        height_factor: float | tuple[float, float],
        width_factor: float | tuple[float, float] | None = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        on: int | str | None = None,
    ):
        super().__init__(fill_mode, interpolation, fill_value, on)
        self._height = factor_range("height_factor", height_factor, -1.0, 1.0)
        self._width = (
            None if width_factor is None else factor_range("width_factor", width_factor, -1, 1)
        )
        self.height_factor = saved_factor(height_factor)
        self.width_factor = saved_factor(width_factor)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        zoom_y = 1.0 + rng.uniform(*self._height, size=n)
        zoom_x = zoom_y if self._width is None else 1.0 + rng.uniform(*self._width, size=n)
        zeros = np.zeros(n)
        linear = np.stack([np.stack([zoom_x, zeros], 1), np.stack([zeros, zoom_y], 1)], 1)
        return _about_center(linear, h, w)

    def factors(self) -> dict[str, Any]:
        return {"height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomTranslation(_AffineTransform):
    """Shifts each image by a random fraction of its size, like
    ``keras.layers.RandomTranslation``.

    Shifts are ``uniform(lower, upper) * height`` down and ``uniform(lower, upper) *
    width`` right (negative: up, left), one vectorised draw of shape ``(batch,)`` each.
    Output: the input's shape and dtype.

    Args:
        height_factor: a number ``f`` in ``[-1, 1]`` (``[-|f|, |f|]``) or a
            ``(lower, upper)`` pair, as fractions of the height.
        width_factor: the same, as fractions of the width.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_value: the value outside the image for ``fill_mode="constant"``.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for a factor out of range or an unknown mode.

    Example:
        >>> import numpy as np
        >>> right = RandomTranslation(0, (0.5, 0.5), fill_mode="constant")
        >>> right(np.array([[[1, 2, 3, 4]]]), seed=0)[0].tolist()
        [[0, 0, 1, 2]]
    """

    def __init__(
        self,
        height_factor: float | tuple[float, float],
        width_factor: float | tuple[float, float],
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        on: int | str | None = None,
    ):
        super().__init__(fill_mode, interpolation, fill_value, on)
        self._height = factor_range("height_factor", height_factor, -1.0, 1.0)
        self._width = factor_range("width_factor", width_factor, -1.0, 1.0)
        self.height_factor = saved_factor(height_factor)
        self.width_factor = saved_factor(width_factor)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        shift_y = rng.uniform(*self._height, size=n) * h
        shift_x = rng.uniform(*self._width, size=n) * w
        matrices = np.zeros((n, 2, 3))
        matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
        matrices[:, 0, 2] = -shift_x
        matrices[:, 1, 2] = -shift_y
        return matrices

    def factors(self) -> dict[str, Any]:
        return {"height_factor": self.height_factor, "width_factor": self.width_factor}
