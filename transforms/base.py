"""`Transform`, `RandomTransform`, and `Lambda`, the adapter for plain callables."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .randomness import as_generator
from .transformed_source import TransformedSource


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
    # Random transforms draw keyed random numbers (NOTE [ Augmentation keys ] in
    # transforms/randomness.py); pipelines and caches look this flag up.
    random = False

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
        return self.apply_on(batch, self.call)

    def apply_on(self, batch: Any, fn: Callable[[Any], Any]) -> Any:
        """Returns ``batch`` with ``fn`` applied to the element ``on`` selects.

        Raises:
            TypeError: when ``on`` does not fit the batch's structure.
            KeyError: when ``on`` is not a key of a dict batch.
        """
        on = self.on
        if on is None:
            if not self.accepts_structures and isinstance(batch, tuple | list | dict):
                raise TypeError(
                    f"{self!r} got a whole {type(batch).__name__} batch; pass on=<index "
                    f"or key> to choose the element it transforms"
                )
            return fn(batch)
        if isinstance(batch, dict):
            if on not in batch:
                raise KeyError(f"{self!r}: on={on!r} is not a key of the batch {list(batch)}")
            return {**batch, on: fn(batch[on])}
        if isinstance(batch, tuple | list):
            if not isinstance(on, int) or not -len(batch) <= on < len(batch):
                raise TypeError(
                    f"{self!r}: on={on!r} does not index a batch of {len(batch)} elements"
                )
            items = list(batch)
            items[on] = fn(items[on])
            return type(batch)(items)
        raise TypeError(f"{self!r}: on={on!r} needs a tuple or dict batch, got one array")

    def __ror__(self, source: Any) -> TransformedSource:
        # ``source | transform`` for sources without their own ``__or__`` (numpy arrays).
        return TransformedSource(source, self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class RandomTransform(Transform):
    """A transform that draws random numbers, the same for a sample wherever it is read.

    A subclass implements ``call(self, x, rng)`` and ``get_config()``. ``rng`` offers
    `numpy.random.Generator`'s ``random``, ``uniform``, ``integers`` and ``normal``; draw
    per-sample parameters in one vectorised call whose first axis is the batch's
    samples (``rng.random(len(x))``, ``rng.uniform(0, 1, (len(x), 2))``). In a
    `Pipeline`, ``rng`` is a `SampleRandom`: sample ``s``'s values are a pure function of
    ``(seed, epoch, s, rank among the chain's random transforms)`` (NOTE [ Augmentation
    keys ] in ``transforms/randomness.py``), so a sample gets the same augmentation
    whatever the batch size, shard count, worker count or resume point. A transform
    that mixes samples of a batch (`MixUp`, `CutMix`) sets ``per_sample = False`` and
    gets a `numpy.random.Generator` keyed by the batch's sample ids instead.

    Called directly on a batch, it takes ``rng=`` (a `numpy.random.Generator` or a
    `SampleRandom`) or ``seed=`` (an int); with neither, it draws from fresh OS entropy.

    Args:
        on: tuple index or dict key of the element to transform, as for `Transform`.

    Raises:
        TypeError: if ``rng`` is not a `numpy.random.Generator` or `SampleRandom`.
        ValueError: if both ``rng`` and ``seed`` are given.

    Example:
        >>> import numpy as np
        >>> class AddNoise(RandomTransform):
        ...     def call(self, x, rng):
        ...         return x + rng.normal(size=x.shape)
        >>> x = np.zeros((2, 3))
        >>> bool((AddNoise()(x, seed=0) == AddNoise()(x, seed=0)).all())
        True
        >>> AddNoise()(x, rng=0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        TypeError: AddNoise(on=None): rng must be a numpy.random.Generator ... rng=0 of type int
    """

    random = True
    # False for transforms that mix the samples of a batch: they draw per batch.
    per_sample = True

    def call(self, x: Any, rng: Any) -> Any:  # type: ignore[override]
        """Transforms one element of a batch with generator ``rng``; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(self, x, rng)")

    def __call__(self, batch: Any, rng: Any = None, *, seed: int | None = None) -> Any:
        generator = as_generator(rng, seed, self)
        return self.apply_on(batch, lambda x: self.call(x, generator))


def _function_path(fn: Callable) -> str:
    if isinstance(fn, np.ufunc) and getattr(np, fn.__name__, None) is fn:
        return f"numpy:{fn.__name__}"  # numpy 1's ufuncs have no __module__ nor __qualname__
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

    With ``random=True`` it is a random transform: ``fn(x, rng)`` gets per-sample
    numbers exactly like `RandomTransform.call` (draws whose first axis is the batch's
    samples: ``rng.random(len(x))``); with ``random="batch"`` a
    `numpy.random.Generator` keyed by the batch's sample ids, for functions that mix
    samples (``rng.permutation(len(x))``). Called directly it takes ``rng=`` or ``seed=``.

    Args:
        fn: the callable; gets the element chosen by ``on`` (whole batch if ``None``).
        on: tuple index or dict key, as for `Transform`.
        name: a name for summaries and plots (defaults to the function's name).
        random: ``False``, ``True`` (per-sample numbers) or ``"batch"`` (a generator
            per batch), passed as ``fn``'s second argument.

    Raises:
        TypeError: if ``fn`` is not callable, or ``rng``/``seed`` is passed to a
            non-random Lambda.
        ValueError: if ``random`` is not ``False``, ``True`` or ``"batch"``.

    Example:
        >>> Lambda(lambda b: (b[0] + 1, b[1]))((1, 2))
        (2, 2)
        >>> import numpy as np
        >>> jitter = Lambda(lambda x, rng: x + rng.integers(0, 9, len(x)), random=True)
        >>> x = np.zeros(3, int)
        >>> bool((jitter(x, seed=1) == jitter(x, seed=1)).all())
        True
    """

    accepts_structures = True

    def __init__(
        self,
        fn: Callable,
        on: int | str | None = None,
        name: str | None = None,
        random: bool = False,
    ):
        if not callable(fn):
            raise TypeError(f"Lambda needs a callable. Received: fn={fn!r}")
        super().__init__(on=on)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        if not (random is False or random is True or random == "batch"):
            raise ValueError(
                f"random must be False, True (per-sample numbers) or 'batch' (a generator "
                f"per batch). Received: random={random!r}"
            )
        self.random = random
        self.per_sample = random is True

    def call(self, x: Any, rng: Any = None) -> Any:
        return self.fn(x, rng) if self.random else self.fn(x)

    def __call__(self, batch: Any, rng: Any = None, *, seed: int | None = None) -> Any:
        if not self.random:
            if rng is not None or seed is not None:
                raise TypeError(
                    f"{self!r} is not random, so it takes no rng or seed; build it with "
                    f"Lambda(fn, random=True) to pass a generator to fn. Received: "
                    f"rng={rng!r}, seed={seed!r}"
                )
            return self.apply_on(batch, self.fn)
        generator = as_generator(rng, seed, self)
        return self.apply_on(batch, lambda x: self.fn(x, generator))

    def get_config(self) -> dict[str, Any]:
        fn = self.fn
        path = getattr(fn, "_seqpipe_registered_name", None) or _function_path(fn)
        return {"fn": path, "on": self.on, "name": self.name, "random": self.random}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Lambda:
        config = dict(config)
        fn = config.pop("fn")
        if isinstance(fn, str):
            fn = resolve_function(fn)
        return cls(fn, **config)

    def __repr__(self) -> str:
        random = f", random={self.random!r}" if self.random else ""
        return f"Lambda({self.name}, on={self.on!r}{random})"


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
