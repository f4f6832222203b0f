"""Augmentations that mix pairs of samples, images and labels alike: `MixUp`, `CutMix`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._image import check_images, is_number
from .base import RandomTransform
from .randomness import as_generator
from .resize_kernels import cast_result


class _MixTransform(RandomTransform):
    """Shared by MixUp and CutMix: finds images and labels in the batch, mixes them."""

    # Pairs samples of one batch: drawn per batch, keyed by its sample ids
    # (NOTE [ Augmentation keys ] in transforms/randomness.py).
    per_sample = False

    accepts_structures = True

    def __init__(self, alpha: float, on: Any) -> None:
        super().__init__(on=None)
        if not is_number(alpha) or not alpha > 0:
            raise ValueError(f"alpha must be a number > 0. Received: alpha={alpha!r}")
        valid_on = on is None or (isinstance(on, list | tuple) and len(on) == 2)
        if not valid_on:
            raise ValueError(
                f"on must be None or an (images, labels) pair of tuple indices or dict "
                f"keys. Received: on={on!r}"
            )
        self.alpha = float(alpha)
        self.on = None if on is None else tuple(on)

    def _keys(self, batch: Any) -> tuple[Any, Any]:
        if not isinstance(batch, tuple | list | dict):
            raise ValueError(
                f"{self!r} mixes labels with the same weights as the images, so it needs a "
                f"batch with labels: (images, labels, ...) or a dict. Received a batch "
                f"without labels: {type(batch).__name__} of shape {np.shape(batch)}"
            )
        keys = self.on or (("images", "labels") if isinstance(batch, dict) else (0, 1))
        if isinstance(batch, dict):
            present = all(k in batch for k in keys)
        else:
            present = all(isinstance(k, int) and -len(batch) <= k < len(batch) for k in keys)
        if not present:
            found = list(batch) if isinstance(batch, dict) else f"{len(batch)} element(s)"
            raise ValueError(
                f"{self!r} needs images and labels at {list(keys)}; the batch has {found} "
                f"(a batch without labels cannot be mixed)"
            )
        return keys

    def _labels(self, labels: Any, n: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.dtype.kind in "biu" and labels.ndim < 2:
            raise ValueError(
                f"{self!r} mixes labels, so they must be one-hot or soft (n, classes) "
                f"floats; received integer class ids of shape {labels.shape}. Apply "
                f"ToCategorical(num_classes, on=...) before it"
            )
        if labels.ndim == 0 or len(labels) != n:
            raise ValueError(f"{self!r}: labels of shape {labels.shape} do not match {n} images")
        return labels if labels.dtype.kind == "f" else labels.astype(np.float32)

    def mix(
        self, images: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the mixed images, the partner of each sample, and the weight of
        each sample's own label."""
        raise NotImplementedError

    def call(self, batch: Any, rng: np.random.Generator) -> Any:  # type: ignore[override]
        image_key, label_key = self._keys(batch)
        images = check_images(batch[image_key], self)
        labels = self._labels(batch[label_key], len(images))
        mixed, partners, weights = self.mix(images, rng)
        w = weights.reshape((-1,) + (1,) * (labels.ndim - 1)).astype(labels.dtype)
        mixed_labels = w * labels + (1 - w) * labels[partners]
        items = dict(batch) if isinstance(batch, dict) else list(batch)
        items[image_key], items[label_key] = mixed, mixed_labels
        return items if isinstance(batch, dict) else type(batch)(items)

    def __call__(self, batch: Any, rng: Any = None, *, seed: int | None = None) -> Any:
        return self.call(batch, as_generator(rng, seed, self))

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "on": None if self.on is None else list(self.on)}


class MixUp(_MixTransform):
    """Blends each image with another of the batch, and its labels with the same weight,
    like ``keras.layers.MixUp``.

    One permutation of the batch picks the partners; weights ``lam ~ Beta(alpha,
    alpha)`` are one vectorised draw of shape ``(batch,)``. Image ``i`` becomes
    ``lam[i] * x[i] + (1 - lam[i]) * x[partner]`` and its labels
    ``lam[i] * y[i] + (1 - lam[i]) * y[partner]``. Images keep their dtype (integers
    rounded, so uint8 never wraps); labels must be one-hot or soft and come out as
    floats. Other elements of the batch (sample weights) are untouched.

    Args:
        alpha: the Beta distribution's parameter, > 0 (0.2 for ImageNet).
        on: ``(images, labels)`` tuple indices or dict keys; ``None`` means ``(0, 1)``
            for tuples and ``("images", "labels")`` for dicts (Keras' keys).

    Raises:
        ValueError: for ``alpha <= 0``, or (when called) a batch without labels or
            with integer class ids.

    Example:
        >>> import numpy as np
        >>> x = np.stack([np.zeros((2, 2, 3)), np.ones((2, 2, 3))]).astype(np.float32)
        >>> y = np.eye(2, dtype=np.float32)
        >>> mx, my = MixUp(alpha=1.0)((x, y), seed=0)
        >>> np.allclose(mx[:, 0, 0, 0], my[:, 1])  # pixel value = weight of class 1
        True
    """

    def __init__(self, alpha: float = 0.2, on: Any = None):
        super().__init__(alpha, on)

    def mix(
        self, images: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(images)
        partners = rng.permutation(n)
        weights = rng.beta(self.alpha, self.alpha, size=n)
        work = images.astype(np.result_type(images.dtype, np.float32))
        lam = weights.reshape((-1,) + (1,) * (images.ndim - 1)).astype(work.dtype)
        mixed = lam * work + (1 - lam) * work[partners]
        return cast_result(mixed, images.dtype), partners, weights


class CutMix(_MixTransform):
    """Pastes a random box of another image of the batch into each image, and mixes the
    labels by the pasted area, like ``keras.layers.CutMix``.

    One permutation of the batch picks the partners; ``lam ~ Beta(alpha, alpha)``
    (one vectorised draw of shape ``(batch,)``) sets the box to
    ``sqrt(1 - lam)`` of the height and width, placed uniformly inside the image.
    Labels become ``w * y[i] + (1 - w) * y[partner]`` where ``1 - w`` is exactly the
    fraction of pixels pasted. Keras calls the Beta parameter's range ``factor``;
    here it is ``alpha``, as in the CutMix paper. Images keep their dtype and values
    (pixels are copied, not blended).

    Args:
        alpha: the Beta distribution's parameter, > 0 (1.0 in the paper).
        on: ``(images, labels)`` tuple indices or dict keys; ``None`` means ``(0, 1)``
            for tuples and ``("images", "labels")`` for dicts.

    Raises:
        ValueError: for ``alpha <= 0``, or (when called) a batch without labels or
            with integer class ids.

    Example:
        >>> import numpy as np
        >>> x = np.stack([np.zeros((8, 8, 3)), np.ones((8, 8, 3))]).astype(np.uint8)
        >>> y = np.eye(2, dtype=np.float32)
        >>> mx, my = CutMix()((x, y), seed=3)
        >>> np.allclose(mx.mean(axis=(1, 2, 3)), my[:, 1])  # pasted share = label weight
        True
    """

    def __init__(self, alpha: float = 1.0, on: Any = None):
        super().__init__(alpha, on)

    def mix(
        self, images: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, h, w = images.shape[:3]
        partners = rng.permutation(n)
        side = np.sqrt(1.0 - rng.beta(self.alpha, self.alpha, size=n))
        box_h = (side * h).astype(np.int64)
        box_w = (side * w).astype(np.int64)
        where = rng.random((n, 2))
        tops = (where[:, 0] * (h - box_h + 1)).astype(np.int64)
        lefts = (where[:, 1] * (w - box_w + 1)).astype(np.int64)
        mixed = images.copy()
        for i in range(n):
            rows = slice(tops[i], tops[i] + box_h[i])
            cols = slice(lefts[i], lefts[i] + box_w[i])
            mixed[i, rows, cols] = images[partners[i], rows, cols]
        weights = 1.0 - (box_h * box_w) / (h * w)
        return mixed, partners, weights
