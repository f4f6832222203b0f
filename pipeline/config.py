"""Pipeline configs: sources and transforms to JSON-able dicts and back, by name.

Built-in sources and transforms are found by class name; user transforms, user
Sequences and functions through the custom objects (`CustomObjectScope`,
``custom_objects=``, `register`). In-memory numpy arrays are not saved: with
``external_sources=True`` they become named placeholders that the caller supplies again
on load (``from_config(config, sources={name: array})``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import sources as _sources
from ..sources.nested import NestedSource
from ..transforms import (
    AUGMENTATIONS,
    Lambda,
    Normalize,
    Resize,
    ToCategorical,
    Transform,
    TransformedSource,
)
from .batches import DICT, TUPLE
from .custom_objects import resolve
from .sequence import Sequence

PLACEHOLDER = "InMemoryArray"
_BUILTIN_TRANSFORMS = (TransformedSource, Lambda, Normalize, Resize, ToCategorical, *AUGMENTATIONS)
# Sources whose modules load on first use (h5py, pyarrow): looked up by name only when a
# config names them, so that importing the pipeline package stays light.
_BUILTIN_SOURCES = (
    "HDF5Matrix",
    "ImageFiles",
    "ParquetSource",
    "TFRecordSource",
    "WebDatasetSource",
)


def builtins() -> dict[str, Any]:
    """The classes configs name without registration: seqpipe's sources and transforms."""
    found = {cls.__name__: cls for cls in _BUILTIN_TRANSFORMS}
    found.update({name: getattr(_sources, name) for name in _BUILTIN_SOURCES})
    return found


def _is_pipeline(obj: Any) -> bool:
    # A nested `Pipeline` (a wrapped batch-level source): saved with its own config.
    # Recognised by its plan, as this module sits below ``pipeline.py``.
    return isinstance(obj, Sequence) and hasattr(obj, "plan") and hasattr(obj, "get_config")


def _is_hdf5(obj: Any) -> bool:
    # Checked by module before the class: an HDF5Matrix exists only once h5py is loaded.
    return type(obj).__module__.endswith(".sources.hdf5") and isinstance(obj, _sources.HDF5Matrix)


def _class_name(obj: Any) -> str:
    return getattr(type(obj), "_seqpipe_registered_name", type(obj).__name__)


def serialize(obj: Any, path: str, external_sources: bool) -> dict[str, Any]:
    """Returns ``{"class_name", "config"}`` for a source, transform, or pipeline.

    Args:
        obj: what to save.
        path: where it sits in the pipeline (names placeholders and errors).
        external_sources: save in-memory arrays as placeholders instead of raising.

    Raises:
        ValueError: for objects that cannot be saved, naming ``path``.
    """
    if isinstance(obj, np.ndarray):
        if not external_sources:
            raise ValueError(
                f"source {path!r} is an in-memory array of shape {obj.shape} and cannot be "
                f"saved; call get_config(external_sources=True) to save a placeholder and "
                f"pass the array again on load: from_config(config, sources={{{path!r}: ...}})"
            )
        return {
            "class_name": PLACEHOLDER,
            "config": {"name": path, "shape": list(obj.shape), "dtype": str(obj.dtype)},
        }
    if _is_pipeline(obj):
        return {"class_name": "Pipeline", "config": obj.get_config(external_sources)}
    if isinstance(obj, NestedSource):
        own = obj.sources
        if isinstance(own, dict):
            parts: Any = {k: serialize(s, f"{path}.{k}", external_sources) for k, s in own.items()}
        else:
            parts = [serialize(s, f"{path}.{i}", external_sources) for i, s in enumerate(own)]
        return {"class_name": "NestedSource", "config": {"sources": parts}}
    if _is_hdf5(obj):
        config = {
            "datapath": obj.datapath,
            "dataset": obj.dataset,
            "start": obj.start,
            "end": obj.end,
            "normalizer": serialize_callable(obj.normalizer, f"{path}.normalizer"),
        }
        return {"class_name": "HDF5Matrix", "config": config}
    if isinstance(obj, TransformedSource):
        config = {
            "source": serialize(obj.source, path, external_sources),
            "transform": serialize_callable(obj.transform, f"{path}.transform"),
        }
        return {"class_name": "TransformedSource", "config": config}
    if hasattr(obj, "get_config"):
        try:
            config = obj.get_config()
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        return {"class_name": _class_name(obj), "config": config}
    raise ValueError(
        f"{path}: cannot save {obj!r}; give it get_config() (and from_config or an "
        f"__init__ taking that config) and register its class"
    )


def serialize_callable(fn: Callable | None, path: str) -> dict[str, Any] | None:
    """Saves a transform, or a plain function as a `Lambda` by reference."""
    if fn is None:
        return None
    if not isinstance(fn, Transform):
        fn = Lambda(fn)
    return serialize(fn, path, external_sources=False)


def deserialize(
    spec: Mapping[str, Any] | None,
    custom_objects: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
    pipeline_cls: Any = None,
) -> Any:
    """Rebuilds what `serialize` saved.

    Args:
        spec: ``{"class_name", "config"}`` from `serialize`, or ``None``.
        custom_objects: extra ``{name: class or function}``.
        sources: ``{placeholder name: array}`` for in-memory sources.
        pipeline_cls: the `Pipeline` class, for nested pipelines.

    Raises:
        ValueError: for an unknown class name (suggesting `CustomObjectScope`) or a
            placeholder whose array was not supplied.
    """
    if spec is None:
        return None
    name, config = spec["class_name"], dict(spec["config"])
    if name == PLACEHOLDER:
        key = config["name"]
        if not sources or key not in sources:
            raise ValueError(
                f"the config needs the in-memory source {key!r} (shape {config['shape']}, "
                f"dtype {config['dtype']}); pass it: from_config(config, sources={{{key!r}: "
                f"array}})"
            )
        return sources[key]
    if name == "Pipeline" and pipeline_cls is not None:
        return pipeline_cls.from_config(config, custom_objects=custom_objects, sources=sources)
    if name == "HDF5Matrix":
        config["normalizer"] = deserialize(config["normalizer"], custom_objects)
        return _sources.HDF5Matrix(**config)
    if name == "NestedSource":
        parts = config["sources"]

        def load(part: Any) -> Any:
            return deserialize(part, custom_objects, sources, pipeline_cls)

        if isinstance(parts, dict):
            return NestedSource({k: load(p) for k, p in parts.items()})
        return NestedSource([load(p) for p in parts])
    if name == "TransformedSource":
        return TransformedSource(
            deserialize(config["source"], custom_objects, sources, pipeline_cls),
            deserialize(config["transform"], custom_objects),
        )
    if name == "Lambda" and ":" not in config["fn"]:
        config["fn"] = resolve(config["fn"], custom_objects)
    cls = resolve(name, custom_objects, builtins())
    if hasattr(cls, "from_config"):
        return cls.from_config(config)
    return cls(**config)


def pipeline_config(pipeline: Any, external_sources: bool) -> dict[str, Any]:
    """`Pipeline.get_config`: its sources, plan settings and transforms, serialized."""
    structure, own = pipeline.structure, pipeline.sources
    if structure == TUPLE:
        sources: Any = [serialize(s, str(i), external_sources) for i, s in enumerate(own)]
    elif structure == DICT:
        sources = {k: serialize(s, str(k), external_sources) for k, s in own.items()}
    else:
        sources = serialize(own, "0", external_sources)
    plan = pipeline.plan
    return {
        "structure": structure,
        "sources": sources,
        "batch_size": plan.batch_size,
        "shuffle": plan.shuffle,
        "seed": plan.seed,
        "drop_remainder": plan.drop_remainder,
        "window": plan.window or None,
        "shard": [plan.num_shards, plan.shard_index] if pipeline.sharded else None,
        "transforms": [
            serialize(t, f"transform {i}", external_sources)
            for i, t in enumerate(pipeline.transforms)
        ],
    }


def pipeline_from_config(
    cls: Any,
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Any] | None,
    sources: Mapping[str, Any] | None,
) -> Any:
    """`Pipeline.from_config`: a ``cls`` rebuilt from `pipeline_config`'s output."""

    def load(spec: Any) -> Any:
        return deserialize(spec, custom_objects, sources, cls)

    structure, saved = config["structure"], config["sources"]
    if structure == TUPLE:
        built: Any = tuple(load(s) for s in saved)
    elif structure == DICT:
        built = {k: load(s) for k, s in saved.items()}
    else:
        built = load(saved)
    pipeline = cls(
        built,
        batch_size=config["batch_size"],
        shuffle=config["shuffle"],
        seed=config["seed"],
        drop_remainder=config["drop_remainder"],
        window=config.get("window"),
    )
    for spec in config["transforms"]:
        pipeline = pipeline | load(spec)
    if config.get("shard"):
        pipeline = pipeline.shard(*config["shard"])
    return pipeline


class Configurable:
    """`get_config`, `from_config`, `to_json` and `from_json` of a `Pipeline`: its
    sources, settings and transforms as a JSON-able dict and back, by name."""

    def get_config(self, external_sources: bool = False) -> dict[str, Any]:
        """Returns a JSON-able description of the sources, settings and transforms.

        Args:
            external_sources: save in-memory numpy sources as named placeholders (to be
                passed again to `from_config`) instead of raising.

        Raises:
            ValueError: for a source or transform that cannot be saved, naming it.

        Example:
            >>> import numpy as np
            >>> from seqpipe.pipeline import Pipeline
            >>> config = Pipeline(np.arange(4), batch_size=2).get_config(True)
            >>> config["sources"]["class_name"], config["batch_size"]
            ('InMemoryArray', 2)
        """
        return pipeline_config(self, external_sources)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        custom_objects: Mapping[str, Any] | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> Any:
        """Rebuilds a pipeline from `get_config`'s output.

        Args:
            config: the dict.
            custom_objects: extra ``{name: class or function}`` to resolve names with.
            sources: ``{placeholder name: array}`` for in-memory sources.

        Raises:
            ValueError: for a name that cannot be resolved or a missing source.
        """
        return pipeline_from_config(cls, config, custom_objects, sources)

    def to_json(self, external_sources: bool = False, **kwargs: Any) -> str:
        """`get_config` as a JSON string (``kwargs`` go to `json.dumps`)."""
        config = {"class_name": "Pipeline", "config": self.get_config(external_sources)}
        return json.dumps(config, **kwargs)

    @classmethod
    def from_json(
        cls,
        json_string: str,
        custom_objects: Mapping[str, Any] | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> Any:
        """Rebuilds a pipeline from `to_json`'s output."""
        return cls.from_config(json.loads(json_string)["config"], custom_objects, sources)
