"""`RandomFlip`: each image flipped left-right and/or top-bottom with probability 1/2."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._image import check_choice, check_images
from .base import RandomTransform

MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(RandomTransform):
    """Flips each image of a batch at random, like ``keras.layers.RandomFlip``.

    ``"horizontal"`` flips left-right, ``"vertical"`` top-bottom, each image with
    probability 1/2. With ``"horizontal_and_vertical"`` the two flips are drawn
    independently (Keras draws one coin for both). The draws are one vectorised call
    of shape ``(batch, 2)``. Output: a new array of the input's shape and dtype.

    Args:
        mode: ``"horizontal"``, ``"vertical"`` or ``"horizontal_and_vertical"``.
        on: tuple index or dict key of the images.

    Raises:
        ValueError: for an unknown ``mode`` or a batch that is not ``(n, h, w[, c])``.

    Example:
        >>> import numpy as np
        >>> x = np.arange(8, dtype=np.uint8).reshape(4, 1, 2)
        >>> RandomFlip("horizontal")(x, seed=0)[:, 0].tolist()
        [[0, 1], [3, 2], [4, 5], [6, 7]]
    """

    def __init__(self, mode: str = "horizontal_and_vertical", on: int | str | None = None):
        super().__init__(on=on)
        self.mode = check_choice("mode", mode, MODES)

    def call(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        images = check_images(x, self)
        coins = rng.random((len(images), 2)) < 0.5
        flip_h = coins[:, 0] & (self.mode != "vertical")
        flip_v = coins[:, 1] & (self.mode != "horizontal")
        out = np.empty_like(images)
        reversed_columns = np.arange(images.shape[2] - 1, -1, -1)
        for i in range(len(images)):
            source = images[i, ::-1] if flip_v[i] else images[i]
            if flip_h[i]:
                # take() copies whole pixels (all channels at once): twice as fast as
                # assigning a [:, ::-1] view, whose innermost loop is one pixel long.
                np.take(source, reversed_columns, axis=1, out=out[i])
            else:
                out[i] = source
        return out

    def get_config(self) -> dict[str, Any]:
        return {"mode": self.mode, "on": self.on}
