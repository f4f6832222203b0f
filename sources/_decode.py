"""Encoded image bytes -> upright ``(h, w, 3)`` arrays: OpenCV for JPEG, Pillow for the rest.

NOTE [ Image decoding path ]
- An 8-bit JPEG in RGB or grayscale is decoded by OpenCV's ``imdecode`` (libjpeg-turbo,
  accurate integer DCT, fancy upsampling: the same pixels as Pillow, about 1.5x faster
  than Pillow's decode-and-unpack here), which also applies the EXIF orientation. Its
  size comes from a scan of the JPEG markers (`jpeg_header`), not from Pillow, whose
  header parse in Python cost 13 % of decoding and resizing a 450-px photo.
  DCT-domain down-scaling: when ``output_shape`` is at most half the image, in either
  orientation (the EXIF tag is read by the decoder, after the scale is chosen),
  libjpeg-turbo decodes at 1/2, 1/4 or 1/8 scale, the smallest that is still at least
  ``output_shape`` (Pillow's ``draft`` rule); the resize then finishes the job. A
  corrupt or truncated JPEG raises ``ValueError``.
- Everything else (PNG, BMP, GIF's first frame, TIFF, WebP, CMYK JPEG, ...) is decoded
  by Pillow: 8-bit modes (grayscale, palette, RGBA, CMYK, ...) become RGB through
  ``Image.convert("RGB")`` (alpha is dropped, not composited); 16-bit and float images
  keep their dtype, grayscale repeated into three channels.
- Files Pillow cannot identify (multi-channel float TIFFs, say) are read by imageio,
  scikit-image's reader.
- EXIF orientation (tag 274, values 2-8) is applied exactly as
  ``PIL.ImageOps.exif_transpose`` applies it (the tests compare all eight), by OpenCV
  for JPEGs and after the resize for Pillow's images, so ``output_shape`` is the shape
  as displayed.

Nothing here imports scipy or scikit-image for a JPEG, so worker processes start in the
time OpenCV and Pillow take to import.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np

from .._core.opencv import opencv
from ..transforms.resize_kernels import resize_image

if TYPE_CHECKING:
    from PIL import Image

# EXIF orientation -> the view of the stored pixels that displays them upright; the
# transpositions of PIL.ImageOps.exif_transpose (FLIP_LEFT_RIGHT, ROTATE_180, ...).
_ORIENTATION_TAG = 274
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: a.swapaxes(0, 1)[::-1],
}
_QUARTER_TURNS = (5, 6, 7, 8)
# Modes whose samples are 8-bit and that Pillow converts to RGB.
_EIGHT_BIT_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_DCT_SCALES = (8, 4, 2)
# Errors Pillow raises on bad data: OSError (truncated, decoder errors, unidentified),
# SyntaxError (malformed headers), ValueError/EOFError/IndexError/KeyError from parsers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError)


def as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """Returns ``image`` as ``(h, w, 3)``: grayscale repeated, alpha dropped.

    Raises:
        ValueError: naming ``name`` for any other shape.
    """
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    if image.ndim == 3 and image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    raise ValueError(f"{name}: expected a grayscale, RGB or RGBA image, got shape {image.shape}")


def _dct_scale(stored_size: tuple[int, int], stored_shape: tuple[int, int]) -> int:
    # The largest of 1/8, 1/4, 1/2 keeping the decoded image at least stored_shape.
    (width, height), (out_height, out_width) = stored_size, stored_shape
    return next((s for s in _DCT_SCALES if width >= s * out_width and height >= s * out_height), 1)


# Start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT (C4),
# JPG (C8) or DAC (CC), which share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_START_OF_SCAN = 0xDA


def jpeg_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(precision, height, width, components)`` of a JPEG's frame, or ``None``.

    ``None`` for bytes that do not start like a JPEG or whose markers end (or reach the
    image data) before a start-of-frame segment: Pillow then reads the file and names
    what is wrong with it.

    Example:
        >>> buffer = io.BytesIO()
        >>> from PIL import Image
        >>> Image.new("RGB", (40, 30)).save(buffer, "JPEG")
        >>> jpeg_header(buffer.getvalue())
        (8, 30, 40, 3)
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        if marker == _START_OF_SCAN:
            return None
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _SOF_MARKERS:
            frame = data[position + 4 : position + 10]
            if len(frame) < 6:
                return None
            return (
                frame[0],
                int.from_bytes(frame[1:3], "big"),
                int.from_bytes(frame[3:5], "big"),
                frame[5],
            )
        position += 2 + length
    return None


def _decode_jpeg(data: bytes, scale: int) -> np.ndarray:
    # OpenCV applies the EXIF orientation (IMREAD_IGNORE_ORIENTATION is not set).
    cv2 = opencv()
    flags = cv2.IMREAD_COLOR_RGB
    # IMREAD_REDUCED_GRAYSCALE_n holds only the scale bit (its COLOR twin also sets BGR).
    flags |= {
        1: 0,
        2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
        4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
        8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }[scale]
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as error:
        raise ValueError(f"OpenCV could not decode it: {error}") from error
    if array is None:
        raise ValueError("libjpeg-turbo could not decode it (corrupt or truncated JPEG)")
    return array


def _decode_with_pillow(image: Image.Image, name: str, scale: int) -> np.ndarray:
    if scale > 1:
        image.draft(image.mode, (image.width // scale, image.height // scale))
    image.load()
    if image.mode in _EIGHT_BIT_MODES:
        return np.asarray(image.convert("RGB"))
    return as_rgb(np.asarray(image), name)


def _decode(
    data: bytes,
    name: str,
    output_shape: tuple[int, int] | None,
    order: int,
    anti_aliasing: bool,
) -> np.ndarray:
    header = jpeg_header(data)
    if header is not None and header[0] == 8 and header[3] in (1, 3):
        _, height, width, _ = header
        scale = 1
        if output_shape is not None:
            # Valid in either orientation: OpenCV reads the EXIF tag while decoding.
            size = (width, height)
            scale = min(_dct_scale(size, output_shape), _dct_scale(size, output_shape[::-1]))
        array = _decode_jpeg(data, scale)
        if output_shape is None:
            return array
        return resize_image(array, output_shape, order, anti_aliasing)
    # Imported here, not at the top: a worker decoding only JPEGs never needs Pillow.
    from PIL import Image

    image = Image.open(io.BytesIO(data))  # reads the header only
    orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    # Shapes as stored in the file: a quarter turn swaps height and width.
    stored_shape = output_shape
    if output_shape is not None and orientation in _QUARTER_TURNS:
        stored_shape = output_shape[::-1]
    scale = 1
    if stored_shape is not None and image.format == "JPEG":
        scale = _dct_scale(image.size, stored_shape)
    array = _decode_with_pillow(image, name, scale)
    if stored_shape is not None:
        array = resize_image(array, stored_shape, order, anti_aliasing)
    if orientation in _UPRIGHT:
        array = np.ascontiguousarray(_UPRIGHT[orientation](array))
    return array


def decode_image(
    data: bytes,
    name: str,
    output_shape: tuple[int, int] | None = None,
    order: int = 1,
    anti_aliasing: bool = True,
) -> np.ndarray:
    """Decodes one encoded image into an upright ``(h, w, 3)`` array.

    See NOTE [ Image decoding path ] for what is decoded how.

    Args:
        data: the file's bytes.
        name: the file's name, for error messages.
        output_shape: ``(height, width)`` to resize to (anti-aliased when shrinking,
            see NOTE [ Resize quality ]), or ``None`` for the stored size.
        order: 0 (nearest), 1 (bilinear) or 3 (bicubic).
        anti_aliasing: blur before shrinking (scikit-image's filter); ``False``
            samples as ``tf.image.resize`` does by default.

    Returns:
        uint8 for 8-bit images; 16-bit and float images keep their dtype.

    Raises:
        ValueError: naming ``name`` if the bytes are not a readable image.

    Example:
        >>> buffer = io.BytesIO()
        >>> from PIL import Image
        >>> Image.new("L", (40, 30), 9).save(buffer, "JPEG")
        >>> decode_image(buffer.getvalue(), "gray.jpg", (15, 20)).shape
        (15, 20, 3)
    """
    try:
        return _decode(data, name, output_shape, order, anti_aliasing)
    except _DECODE_ERRORS as error:
        failure = error
    from PIL import UnidentifiedImageError

    if isinstance(failure, UnidentifiedImageError):
        try:
            import imageio.v3 as iio  # scikit-image's reader: imported for exotic files only

            # The extension picks imageio's plugin (tifffile for .tif, say).
            extension = os.path.splitext(name)[1] or None
            array = as_rgb(np.asarray(iio.imread(data, extension=extension)), name)
        except Exception:  # Pillow's error is the one to report
            pass
        else:
            if output_shape is not None:
                array = resize_image(array, output_shape, order, anti_aliasing)
            return array
    raise ValueError(f"cannot read image {name}: {failure}") from failure
