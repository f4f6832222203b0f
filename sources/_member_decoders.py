"""Decoders of WebDataset members by name (``decode={"jpg": "image", "cls": "int"}``),
and the placeholder values of padding rows."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ._decode import decode_image

DECODERS = ("image", "int", "float", "json", "array", "bytes", "str")


def decode_member(
    kind: str,
    data: bytes,
    where: str,
    output_shape: tuple[int, int] | None,
    anti_aliasing: bool,
) -> Any:
    """Decodes one member's bytes.

    Args:
        kind: one of `DECODERS`: ``"image"`` (like `ImageFiles`: upright RGB, resized to
            ``output_shape``), ``"int"``/``"float"`` (a number in ASCII, as WebDataset
            writes ``.cls`` files), ``"json"``, ``"array"`` (a ``.npy`` file),
            ``"bytes"`` or ``"str"`` (UTF-8).
        data: the member's bytes.
        where: the shard and key, for errors.
        output_shape: ``(height, width)`` for images, or ``None``.
        anti_aliasing: blur before shrinking images.

    Raises:
        ValueError: naming ``where`` when the bytes cannot be decoded so.

    Example:
        >>> decode_member("int", b" 7\\n", "shard-0.tar:key", None, True)
        7
    """
    if kind == "image":
        return decode_image(data, where, output_shape, 1, anti_aliasing)
    if kind == "bytes":
        return bytes(data)
    try:
        if kind == "array":
            return np.load(io.BytesIO(data), allow_pickle=False)
        text = bytes(data).decode("utf-8")
        if kind == "str":
            return text
        if kind == "json":
            return json.loads(text)
        return int(text.strip()) if kind == "int" else float(text.strip())
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"cannot decode {where} as {kind!r}: {error}") from None


def placeholder(kind: str, like: Any, output_shape: tuple[int, int] | None, where: str) -> Any:
    """The value of a padding row (a skipped sample) for one field.

    Args:
        kind: the field's decoder.
        like: a value of the same field in the same batch, or ``None``.
        output_shape: the source's ``output_shape``.
        where: the shard and key, for errors.

    Raises:
        ValueError: for an image or array field when no other row of the batch and no
            ``output_shape`` gives the shape.
    """
    if isinstance(like, np.ndarray):
        return np.zeros_like(like)
    if kind == "image" and output_shape is not None:
        return np.zeros((*output_shape, 3), dtype=np.uint8)
    if kind in ("image", "array"):
        raise ValueError(
            f"{where} is skipped, and no other sample of its batch gives the shape of its "
            f"padding row; pass output_shape=(height, width) for images, or read larger "
            f"batches"
        )
    return {"int": 0, "float": float("nan"), "bytes": b"", "str": ""}.get(kind)
