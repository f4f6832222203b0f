"""Argument and batch checks shared by the image augmentations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def saved_factor(factor: Any) -> Any:
    """A JSON-able copy of a factor argument as given: pairs become lists of floats."""
    if factor is None or is_number(factor):
        return factor
    return [float(v) for v in factor]


def check_images(x: Any, owner: Any) -> np.ndarray:
    """Returns ``x`` as an array of images ``(n, h, w)`` or ``(n, h, w, c)``.

    Raises:
        ValueError: for any other rank or a non-numeric dtype, naming ``owner``.
    """
    images = np.asarray(x)
    if images.ndim not in (3, 4) or images.dtype.kind not in "uif":
        raise ValueError(
            f"{owner!r} expects a batch of images (n, height, width) or (n, height, width, "
            f"channels) of integers or floats. Received shape {images.shape}, dtype "
            f"{images.dtype}"
        )
    return images


def factor_range(
    name: str, value: Any, low: float, high: float, single: str = "symmetric"
) -> tuple[float, float]:
    """Parses a Keras-style factor: one number or a ``(lower, upper)`` pair.

    Args:
        name: the argument's name (for errors).
        value: the argument.
        low, high: the bounds every number must lie in.
        single: what one number ``f`` means: ``'symmetric'`` gives ``(-|f|, |f|)``,
            ``'same'`` gives ``(f, f)``.

    Returns:
        ``(lower, upper)`` with ``lower <= upper``.

    Raises:
        ValueError: naming ``name`` and the value, when it is malformed or out of range.
    """
    if is_number(value):
        pair = (-abs(value), abs(value)) if single == "symmetric" else (value, value)
    elif isinstance(value, Sequence) and len(value) == 2 and all(map(is_number, value)):
        pair = tuple(sorted(value))
    else:
        pair = None
    if pair is None or not all(low <= v <= high for v in pair):
        raise ValueError(
            f"{name} must be a number or a (lower, upper) pair of numbers in "
            f"[{low}, {high}]. Received: {name}={value!r}"
        )
    return float(pair[0]), float(pair[1])


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Returns ``value`` if it is one of ``choices``.

    Raises:
        ValueError: naming the value and the choices.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def check_size(name: str, value: Any) -> int:
    """Returns ``value`` if it is a positive int.

    Raises:
        ValueError: naming the value.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    return int(value)


def check_value_range(value: Any) -> tuple[float, float]:
    """Returns ``value_range`` as ``(low, high)`` floats with ``low < high``.

    Raises:
        ValueError: naming the value.
    """
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(map(is_number, value))
        or not value[0] < value[1]
    ):
        raise ValueError(
            f"value_range must be a (low, high) pair of numbers with low < high. "
            f"Received: value_range={value!r}"
        )
    return float(value[0]), float(value[1])


def clip_to(values: np.ndarray, value_range: tuple[float, float], dtype: np.dtype) -> np.ndarray:
    """Clips float ``values`` to ``value_range`` and casts them to ``dtype``.

    Integer dtypes are rounded and also clipped to the dtype's own range, so uint8
    never wraps.
    """
    low, high = value_range
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(low, info.min), min(high, info.max)
        values = np.rint(values, out=values)
    return np.clip(values, low, high, out=values).astype(dtype, copy=False)
