"""The `Transform` base class and `Lambda`, the adapter for plain callables."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Transform:
    """Maps a batch to a batch.

    A subclass implements ``call(self, x)`` on one array whose leading axis holds the
    samples, and ``get_config()``. Calling the transform on a batch applies ``call`` to
    the element that ``on`` selects: a tuple index, a dict key, or ``None`` for the
    whole batch. ``pipeline | transform`` appends it to a pipeline;
    ``source | transform`` wraps an array-like source so every read is transformed.

    Args:
        on: tuple index or dict key of the element to transform; ``None`` passes the
            whole batch.

    Raises:
        TypeError: when ``on`` does not fit the batch's structure.

    Example:
        >>> import numpy as np
        >>> class Double(Transform):
        ...     def call(self, x):
        ...         return x * 2
        >>> Double(on=0)((np.ones(2), "label"))[0].tolist()
        [2.0, 2.0]
    """

    # Lets ``ndarray | transform`` reach ``__ror__`` instead of a ufunc.
    __array_ufunc__ = None
    # Array transforms refuse a whole tuple/dict batch; Lambda accepts any structure.
    accepts_structures = False

    def __init__(self, on: int | str | None = None) -> None:
        self.on = on

    def call(self, x: Any) -> Any:
        """Transforms one element of a batch; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(self, x)")

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments as a JSON-able dict."""
        return {"on": self.on}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Transform:
        """Builds the transform from `get_config`'s output."""
        return cls(**config)

    def __call__(self, batch: Any) -> Any:
        on = self.on
        if on is None:
            if not self.accepts_structures and isinstance(batch, tuple | list | dict):
                raise TypeError(
                    f"{self!r} got a whole {type(batch).__name__} batch; pass on=<index "
                    f"or key> to choose the element it transforms"
                )
            return self.call(batch)
        if isinstance(batch, dict):
            if on not in batch:
                raise KeyError(f"{self!r}: on={on!r} is not a key of the batch {list(batch)}")
            return {**batch, on: self.call(batch[on])}
        if isinstance(batch, tuple | list):
            if not isinstance(on, int) or not -len(batch) <= on < len(batch):
                raise TypeError(
                    f"{self!r}: on={on!r} does not index a batch of {len(batch)} elements"
                )
            items = list(batch)
            items[on] = self.call(items[on])
            return type(batch)(items)
        raise TypeError(f"{self!r}: on={on!r} needs a tuple or dict batch, got one array")

    def __ror__(self, source: Any) -> Any:
        # ``source | transform`` for sources without their own ``__or__`` (numpy
        # arrays). Imported here because sources are the callers' concern, not ours.
        from sources import TransformedSource

        return TransformedSource(source, self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _function_path(fn: Callable) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        raise ValueError(
            f"Lambda({fn!r}) cannot be saved by reference: only importable module-level "
            f"functions can; register it with pipeline.register or pass it through "
            f"custom_objects when loading"
        )
    return f"{module}:{qualname}"


def resolve_function(path: str) -> Callable:
    """Imports ``'module:qualname'`` and returns the function it names.

    Raises:
        ValueError: if the path cannot be imported.
    """
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import function {path!r}: {err}") from err
    return obj


class Lambda(Transform):
    """Wraps any callable ``fn(batch_or_element) -> same`` as a transform.

    Args:
        fn: the callable; gets the element chosen by ``on`` (whole batch if ``None``).
        on: tuple index or dict key, as for `Transform`.
        name: a name for summaries and plots (defaults to the function's name).

    Example:
        >>> Lambda(lambda b: (b[0] + 1, b[1]))((1, 2))
        (2, 2)
    """

    accepts_structures = True

    def __init__(self, fn: Callable, on: int | str | None = None, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"Lambda needs a callable. Received: fn={fn!r}")
        super().__init__(on=on)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def call(self, x: Any) -> Any:
        return self.fn(x)

    def get_config(self) -> dict[str, Any]:
        fn = self.fn
        path = getattr(fn, "_seqpipe_registered_name", None) or _function_path(fn)
        return {"fn": path, "on": self.on, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Lambda:
        config = dict(config)
        fn = config.pop("fn")
        if isinstance(fn, str):
            fn = resolve_function(fn)
        return cls(fn, **config)

    def __repr__(self) -> str:
        return f"Lambda({self.name}, on={self.on!r})"


def as_transform(obj: Any) -> Transform:
    """Returns ``obj`` if it is a `Transform`, a `Lambda` around it if it is callable.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(obj, Transform):
        return obj
    if callable(obj):
        return Lambda(obj)
    raise TypeError(f"expected a Transform or a callable. Received: {obj!r}")
