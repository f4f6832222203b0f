"""Lazy package exports (PEP 562): each public name is imported from its module on
first use, so that a worker process that unpickles one class pays for its module only."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, modules: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    Args:
        package: the package's ``__name__``.
        modules: each public name -> the module (relative to ``package``) defining it.

    Returns:
        ``(__getattr__, __dir__)``; a name once imported is kept in the package.

    Example:
        >>> getattr_, _ = lazy_exports("json", {"JSONDecoder": ".decoder"})
        >>> getattr_("JSONDecoder").__name__
        'JSONDecoder'
    """

    def __getattr__(name: str) -> object:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *modules])

    return __getattr__, __dir__
