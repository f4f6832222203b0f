"""`ImageFiles`: image files read lazily, decoded (OpenCV, Pillow) and resized, as a source."""

from __future__ import annotations

import os
from collections.abc import Sequence as Seq
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.indexing import check_index, check_indices
from ..transforms import ArraySource
from ._decode import decode_image
from ._disk_cache import DiskCache
from ._file_store import FileStore
from ._locations import resolve, resolve_paths

if TYPE_CHECKING:
    import pyarrow.fs as pafs

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageFiles(ArraySource):
    """Image files as samples: read lazily, as upright ``(height, width, 3)`` RGB arrays.

    JPEGs are decoded by OpenCV's libjpeg-turbo (at 1/2, 1/4 or 1/8 scale in the DCT
    domain when ``output_shape`` is at most half the image), other formats (PNG, BMP,
    GIF's first frame, TIFF, WebP, CMYK JPEG) by Pillow, files Pillow cannot identify
    by imageio (scikit-image's reader). Images are turned upright by their EXIF
    orientation as ``PIL.ImageOps.exif_transpose`` does, and made RGB: grayscale,
    palette, CMYK and the rest are converted, alpha channels dropped, so any mix of
    files stacks into one batch. With ``output_shape`` (the shape as displayed) every
    image is resized bilinearly, anti-aliased when shrinking as scikit-image does, in
    uint8; without it, a batch of differently sized images raises an error naming
    them. No scipy or scikit-image import for a JPEG. See NOTE [ Image decoding path ]
    in ``sources/_decode.py`` and NOTE [ Resize quality ] in
    ``transforms/resize_kernels.py``.

    Args:
        paths: image file paths, or URIs on one filesystem (``s3://bucket/a.jpg``,
            ``gs://...``, with pyarrow's query options), or with ``filesystem`` paths
            inside it (see NOTE [ Remote files in worker processes ] in
            ``sources/_locations.py``).
        output_shape: ``(height, width)`` to resize to, or ``None``.
        dtype: dtype of the result; ``None`` keeps each file's own (``uint8`` for
            8-bit files, ``uint16`` for 16-bit PNG/TIFF). A float dtype converts the
            resized uint8 values; it does not rescale them.
        filesystem: a `pyarrow.fs.FileSystem` holding ``paths``. Such a source
            pickles, but cannot be saved in a config: use URIs for that.
        cache_dir: a local directory keeping fetched remote files, shared by processes
            (each file is fetched once); ``None``: no disk cache.
        cache_dir_bytes: budget of ``cache_dir``; least recently read files are dropped.
        anti_aliasing: blur before shrinking, as scikit-image does (the default: no
            aliasing on fine texture); ``False`` samples the nearest rows and columns as
            ``tf.image.resize`` and ``image_dataset_from_directory`` do by default,
            1.1-1.3x the images/s in ``benchmarks/images.py``.

    Raises:
        FileNotFoundError: if a path does not exist (checked on construction), naming
            it (as a URI for remote files).
        ValueError: if ``output_shape`` is malformed, a URI is malformed or on another
            filesystem than the first, or ``cache_dir`` is not writable; on reading,
            naming the file, if it is not a readable image (a corrupt or truncated
            JPEG, say).

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
        filesystem: pafs.FileSystem | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_dir_bytes: int = 16 * 2**30,
        anti_aliasing: bool = True,
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        location, inner = resolve_paths(self.paths, filesystem)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.cache_dir_bytes = cache_dir_bytes
        disk = None if cache_dir is None else DiskCache(cache_dir, cache_dir_bytes)
        self._store = FileStore(location, disk)
        missing = self._store.missing(inner)
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}")
        if output_shape is not None:
            output_shape = tuple(output_shape)
            if len(output_shape) != 2 or not all(int(s) == s and s > 0 for s in output_shape):
                raise ValueError(
                    f"output_shape must be (height, width). Received: {output_shape!r}"
                )
            output_shape = (int(output_shape[0]), int(output_shape[1]))
        self.output_shape = output_shape
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.anti_aliasing = bool(anti_aliasing)

    def __len__(self) -> int:
        return len(self.paths)

    def read_bytes(self, path: str) -> bytes:
        """Returns the encoded bytes of ``path``: the one place that opens files
        (remote ones with retries, through the disk cache when there is one)."""
        return self._store.read_file(self._store.location.inner_of(path))

    def _decode(self, index: int) -> np.ndarray:
        # May be read-only (Pillow's buffer): load() copies, batches stack into new memory.
        path = self.paths[index]
        image = decode_image(self.read_bytes(path), path, self.output_shape, 1, self.anti_aliasing)
        return image if self.dtype is None else image.astype(self.dtype, copy=False)

    def load(self, index: int) -> np.ndarray:
        """Reads, decodes, converts and resizes image ``index`` (a writable array).

        Raises:
            ValueError: naming the file if it cannot be read as an image.
        """
        return np.array(self._decode(index))

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self.load(check_index(key, len(self)))
        ids = (
            np.arange(*key.indices(len(self)))
            if isinstance(key, slice)
            else check_indices(key, len(self))
        )
        images = [self._decode(int(i)) for i in ids]
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
        cls,
        root: str | os.PathLike,
        output_shape: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> tuple[ImageFiles, np.ndarray, list[str]]:
        """Reads a ``root/<class_name>/<image>`` tree, local or in object storage.

        Args:
            root: directory with one subdirectory per class; a URI
                (``s3://bucket/train/``) lists classes from the prefixes under it.
            output_shape: passed to `ImageFiles`.
            **kwargs: ``dtype``, ``filesystem`` (``root`` is then a path inside it),
                ``cache_dir``, ``cache_dir_bytes``, ``anti_aliasing``: passed to
                `ImageFiles`.

        Returns:
            ``(images, labels, class_names)``: classes sorted by name, images sorted by
            path within each class, int64 labels indexing ``class_names``.

        Raises:
            FileNotFoundError: if ``root`` is missing or holds no images.
        """
        root = os.fspath(root)
        location, inner = resolve(root, kwargs.get("filesystem"))
        if location.uri is not None or location.filesystem is not None:
            return cls._from_remote_directory(root, location, inner, output_shape, kwargs)
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
        images = cls(paths, output_shape, **kwargs)
        return images, np.array(labels, dtype=np.int64), class_names

    @classmethod
    def _from_remote_directory(
        cls, root: str, location: Any, inner: str, output_shape: Any, kwargs: dict[str, Any]
    ) -> tuple[ImageFiles, np.ndarray, list[str]]:
        # One recursive listing: a class is a prefix, its images the objects directly in it.
        inner = inner.rstrip("/")
        files = FileStore(location).list_files(inner, recursive=True)
        by_class: dict[str, list[str]] = {}
        for info in files:
            parts = info.path[len(inner) + 1 :].split("/")
            if len(parts) == 2 and parts[1].lower().endswith(IMAGE_EXTENSIONS):
                by_class.setdefault(parts[0], []).append(location.uri_for(info.path))
        class_names = sorted(by_class)
        if not class_names:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders of {root}"
            )
        paths = [p for name in class_names for p in sorted(by_class[name])]
        labels = [k for k, name in enumerate(class_names) for _ in by_class[name]]
        images = cls(paths, output_shape, **kwargs)
        return images, np.array(labels, dtype=np.int64), class_names

    def get_config(self) -> dict[str, Any]:
        """Returns the arguments that rebuild this source.

        Raises:
            ValueError: if it was given a filesystem object, which a config cannot hold.
        """
        self._store.check_saveable("ImageFiles")
        return {
            "paths": self.paths,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "dtype": None if self.dtype is None else str(self.dtype),
            "cache_dir": self.cache_dir,
            "cache_dir_bytes": self.cache_dir_bytes,
            "anti_aliasing": self.anti_aliasing,
        }

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files, output_shape={self.output_shape})"
