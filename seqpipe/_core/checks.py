"""Argument checks shared by every layer: integers in a range, writable directories."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np


def check_int(
    name: str, value: Any, minimum: int | None = None, maximum: int | None = None, hint: str = ""
) -> int:
    """Returns ``value`` as an int after checking it is an integer in range.

    Booleans are refused (``True`` is not a count). numpy integers are accepted.

    Args:
        name: the argument's name, for the message.
        value: what was received.
        minimum: the smallest accepted value, or ``None``.
        maximum: the largest accepted value, or ``None``.
        hint: a sentence appended to the message (the remedy).

    Returns:
        ``int(value)``.

    Raises:
        ValueError: ``"<name> must be an integer >= <minimum>. Received: <name>=<value>"``.

    Example:
        >>> check_int("batch_size", 4, 1)
        4
        >>> check_int("batch_size", 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an integer >= 1. Received: batch_size=0
    """
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, int | np.integer)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        if minimum is not None and maximum is not None:
            expected = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            expected = f"an integer >= {minimum}"
        elif maximum is not None:
            expected = f"an integer <= {maximum}"
        else:
            expected = "an integer"
        remedy = f" {hint}" if hint else ""
        raise ValueError(f"{name} must be {expected}.{remedy} Received: {name}={value!r}")
    return int(value)


def check_writable_dir(directory: str, label: str) -> None:
    """Creates ``directory`` if needed and checks that a file can be written in it.

    Args:
        directory: the directory.
        label: how the error names it, e.g. ``"cache_dir '/data'"``.

    Raises:
        ValueError: ``"<label> is not a writable directory: <reason>"``.

    Example:
        >>> import tempfile
        >>> check_writable_dir(tempfile.gettempdir(), "cache_dir")
    """
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ValueError(f"{label} is not a writable directory: {error}") from error
