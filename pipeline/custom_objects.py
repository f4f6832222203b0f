"""The custom-object registry: names that configs and string look-ups resolve to.

Look-up order for a name: the ``custom_objects`` passed to the call, the global custom
objects (`get_custom_objects`, which `CustomObjectScope` edits), the names registered
with `register`, then seqpipe's built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_GLOBAL_CUSTOM_OBJECTS: dict[str, Any] = {}
# Filled by @register; kept apart from the global dict so that a scope's revert on
# exit never unregisters a class that was decorated while the scope was open.
_REGISTERED: dict[str, Any] = {}

T = TypeVar("T")


def get_custom_objects() -> dict[str, Any]:
    """Returns the live global dict of custom objects.

    Writing to it registers objects by name; changes made inside a `CustomObjectScope`
    are reverted when the scope exits.

    Example:
        >>> get_custom_objects()["Twice"] = lambda x: 2 * x
        >>> del get_custom_objects()["Twice"]
    """
    return _GLOBAL_CUSTOM_OBJECTS


class CustomObjectScope:
    """Makes custom objects resolvable by name inside a ``with`` block.

    Every change to the global custom objects made inside the block, by this scope or
    by any other code, is reverted on exit, also when the block raises. Scopes nest.

    Args:
        *args: dicts of ``{name: object}``.

    Example:
        >>> with CustomObjectScope({"MyTransform": object}):
        ...     "MyTransform" in get_custom_objects()
        True
        >>> "MyTransform" in get_custom_objects()
        False
    """

    def __init__(self, *args: Mapping[str, Any]) -> None:
        for arg in args:
            if not isinstance(arg, Mapping):
                raise TypeError(
                    f"CustomObjectScope takes dicts of name -> object. Received: {arg!r}"
                )
        self.custom_objects = args
        self._backups: list[dict[str, Any]] = []  # a stack: one scope may be re-entered

    def __enter__(self) -> CustomObjectScope:
        self._backups.append(dict(_GLOBAL_CUSTOM_OBJECTS))
        for objects in self.custom_objects:
            _GLOBAL_CUSTOM_OBJECTS.update(objects)
        return self

    def __exit__(self, *exc: object) -> None:
        _GLOBAL_CUSTOM_OBJECTS.clear()
        _GLOBAL_CUSTOM_OBJECTS.update(self._backups.pop())


def custom_object_scope(*args: Mapping[str, Any]) -> CustomObjectScope:
    """Returns a `CustomObjectScope` (the Keras 2 functional spelling).

    Example:
        >>> with custom_object_scope({"Foo": int}):
        ...     get_custom_objects()["Foo"]
        <class 'int'>
    """
    return CustomObjectScope(*args)


def register(name: str | None = None) -> Callable[[T], T]:
    """Class or function decorator: always resolvable by ``name`` (default: its name).

    Example:
        >>> @register()
        ... def shift(x):
        ...     return x + 1
        >>> resolve("shift") is shift
        True
    """

    def decorate(obj: T) -> T:
        key = name or obj.__name__
        _REGISTERED[key] = obj
        obj._seqpipe_registered_name = key
        return obj

    return decorate


def resolve(
    name: str,
    custom_objects: Mapping[str, Any] | None = None,
    builtins: Mapping[str, Any] | None = None,
) -> Any:
    """Returns the object registered under ``name``.

    Raises:
        ValueError: naming ``name`` and suggesting `CustomObjectScope`, if unknown.
    """
    for table in (custom_objects or {}, _GLOBAL_CUSTOM_OBJECTS, _REGISTERED, builtins or {}):
        if name in table:
            return table[name]
    raise ValueError(
        f"Unknown object name {name!r}: register it with pipeline.register, pass "
        f"custom_objects={{{name!r}: ...}}, or load inside "
        f"CustomObjectScope({{{name!r}: ...}})"
    )
