"""Method bodies that a higher layer provides to a class of a lower one.

A lower layer never imports a higher one. Where a method of a lower layer needs one
(``seq.as_keras()`` needs the enqueuer; ``Sequence | t`` needs `Pipeline`), the lower
layer keeps a thin, documented method that calls `provided(name)`, and the module that
can do the work calls `provide(name, body)` when it is imported. Importing ``seqpipe``
imports every layer, so a body is always in place by the time a user calls the method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_BODIES: dict[str, Callable[..., Any]] = {}


def provide(name: str, body: Callable[..., Any]) -> None:
    """Registers ``body`` as the implementation of the thin method ``name``.

    Args:
        name: the method, as ``"Class.method"``.
        body: a function taking the instance first, then the method's arguments.

    Example:
        >>> provide("Example.twice", lambda self, x: 2 * x)
        >>> provided("Example.twice")(None, 4)
        8
    """
    _BODIES[name] = body


def provided(name: str) -> Callable[..., Any]:
    """Returns the body registered for ``name``.

    Raises:
        RuntimeError: if no module has provided it (only possible when a seqpipe module
            is loaded without ``import seqpipe``, e.g. by file path).
    """
    try:
        return _BODIES[name]
    except KeyError:
        raise RuntimeError(
            f"{name} is implemented by a higher seqpipe layer that is not loaded; "
            f"`import seqpipe` loads every layer"
        ) from None
