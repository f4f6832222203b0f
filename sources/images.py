"""`ImageFiles`: image files read lazily with scikit-image, as an array-like source."""

from __future__ import annotations

import os
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np

from ._base import ArraySource, check_index, check_indices

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _as_rgb(image: np.ndarray, path: str) -> np.ndarray:
    # One layout for every file, so that mixed folders stack: grayscale is repeated
    # into three channels, an alpha channel is dropped.
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    raise ValueError(f"{path}: expected a grayscale, RGB or RGBA image, got shape {image.shape}")


class ImageFiles(ArraySource):
    """Image files as samples: read lazily, as ``(height, width, 3)`` RGB arrays.

    Grayscale images are repeated into three channels and alpha channels dropped, so
    any mix of files stacks into one batch. With ``output_shape`` every image is
    resized (scikit-image, bilinear, anti-aliased when shrinking); without it, a batch
    of differently sized images raises an error naming them.

    Args:
        paths: image file paths.
        output_shape: ``(height, width)`` to resize to, or ``None``.
        dtype: dtype of the result; ``None`` keeps each file's own (``uint8`` for
            most), rounding resized values.

    Raises:
        FileNotFoundError: if a path does not exist (checked on construction).

    Example:
        >>> images, labels, names = ImageFiles.from_directory("photos", (64, 64))  # doctest: +SKIP
        >>> images[0:8].shape                                                      # doctest: +SKIP
        (8, 64, 64, 3)
    """

    def __init__(
        self,
        paths: Seq[str | os.PathLike],
        output_shape: tuple[int, int] | None = None,
        dtype: Any = None,
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}")
        if output_shape is not None:
            output_shape = tuple(output_shape)
            if len(output_shape) != 2 or not all(int(s) == s and s > 0 for s in output_shape):
                raise ValueError(
                    f"output_shape must be (height, width). Received: {output_shape!r}"
                )
        self.output_shape = output_shape
        self.dtype = None if dtype is None else np.dtype(dtype)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """Reads, converts and resizes image ``index``.

        Raises:
            ValueError: naming the file if it cannot be read as an image.
        """
        from skimage.io import imread  # scikit-image loads scipy: import on first use

        path = self.paths[index]
        try:
            image = np.asarray(imread(path))
        except Exception as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
        image = _as_rgb(image, path)
        dtype = self.dtype or image.dtype
        if self.output_shape is not None and image.shape[:2] != self.output_shape:
            from skimage.transform import resize

            image = resize(image, self.output_shape, preserve_range=True, anti_aliasing=True)
            if dtype.kind in "iu":
                image = np.clip(np.rint(image), np.iinfo(dtype).min, np.iinfo(dtype).max)
        return image.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self.load(check_index(key, len(self)))
        ids = (
            np.arange(*key.indices(len(self)))
            if isinstance(key, slice)
            else check_indices(key, len(self))
        )
        images = [self.load(int(i)) for i in ids]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(
                f"images of different shapes {sorted(shapes)} cannot form one batch (e.g. "
                f"{self.paths[int(ids[0])]}); pass output_shape=(height, width)"
            )
        if not images:
            return np.zeros((0, *(self.output_shape or (0, 0)), 3), dtype=self.dtype or np.uint8)
        return np.stack(images)

    @classmethod
    def from_directory(
        cls, root: str | os.PathLike, output_shape: tuple[int, int] | None = None
    ) -> tuple[ImageFiles, np.ndarray, list[str]]:
        """Reads a ``root/<class_name>/<image>`` tree.

        Args:
            root: directory with one subdirectory per class.
            output_shape: passed to `ImageFiles`.

        Returns:
            ``(images, labels, class_names)``: classes sorted by name, images sorted by
            path within each class, int64 labels indexing ``class_names``.

        Raises:
            FileNotFoundError: if ``root`` is missing or holds no images.
        """
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image directory not found: {root}")
        class_names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        paths, labels = [], []
        for label, name in enumerate(class_names):
            folder = os.path.join(root, name)
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
            paths += [os.path.join(folder, f) for f in files]
            labels += [label] * len(files)
        if not paths:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders of {root}"
            )
        return cls(paths, output_shape), np.array(labels, dtype=np.int64), class_names

    def get_config(self) -> dict[str, Any]:
        return {
            "paths": self.paths,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "dtype": None if self.dtype is None else str(self.dtype),
        }

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files, output_shape={self.output_shape})"
