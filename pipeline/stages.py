"""A pipeline as a list of stages, with outputs and costs measured on real batches.

Shared by `print_summary` and `plot_model`.
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..transforms import Lambda
from .batches import BATCHES, DICT, SINGLE, TUPLE
from .pipeline import Pipeline
from .sequence import Sequence


@dataclass
class Stage:
    """One stage: its kind (``source``, ``batch``, ``transform``, ``shard``), a
    description, the output of the first measured batch and the seconds spent per batch.
    ``inner`` holds the stages of a nested pipeline source; ``random`` marks a random
    transform (its name starts with `RANDOM_MARK`)."""

    kind: str
    name: str
    output: Any = None
    seconds: list[float] = field(default_factory=list)
    inner: list[Stage] = field(default_factory=list)
    random: bool = False

    @property
    def ms_per_batch(self) -> float:
        return 1e3 * float(np.mean(self.seconds)) if self.seconds else 0.0


# Starts the name of a random transform's stage in summaries and plots (a prefix
# survives the summary's column cut).
RANDOM_MARK = "[random] "


def _jsonable(value: Any) -> Any:
    # Configs hold lists where constructors default to tuples.
    return list(value) if isinstance(value, tuple) else value


def describe(obj: Any) -> str:
    """A short name for a source or transform."""
    if isinstance(obj, np.ndarray):
        return f"ndarray{obj.shape}"
    if hasattr(obj, "datapath") and hasattr(obj, "dataset"):
        return f"{type(obj).__name__}({os.path.basename(obj.datapath)}:{obj.dataset})"
    if isinstance(obj, Pipeline):
        return f"Pipeline[{obj.structure}]"
    if isinstance(obj, Lambda):
        return repr(obj)  # its function's name; a lambda has no saveable config
    if hasattr(obj, "get_config"):
        # Only the arguments that differ from the constructor's defaults.
        params = inspect.signature(type(obj).__init__).parameters
        args = [
            f"{k}={v!r}"
            for k, v in obj.get_config().items()
            if k not in params
            or params[k].default is inspect.Parameter.empty
            or _jsonable(params[k].default) != v
        ]
        return f"{type(obj).__name__}({', '.join(args)})"
    return type(obj).__name__


def _arrays(output: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(output, dict):
        return [(f"{k}: ", np.asarray(v)) for k, v in output.items()]
    if isinstance(output, tuple | list):
        return [("", np.asarray(v)) for v in output]
    return [("", np.asarray(output))]


def shapes(output: Any) -> str:
    """``(64, 32, 32, 3), (64, 10)`` for a tuple batch; ``x: (...)`` for dicts."""
    return ", ".join(f"{label}{arr.shape}" for label, arr in _arrays(output))


def dtypes(output: Any) -> str:
    return ", ".join(str(arr.dtype) for _, arr in _arrays(output))


def nbytes(output: Any) -> int:
    return sum(arr.nbytes for _, arr in _arrays(output))


def as_pipeline(seq: Any) -> Pipeline:
    """A `Pipeline` as it is, anything else batch-level wrapped in one."""
    return seq if isinstance(seq, Pipeline) else Pipeline(seq)


def stage_list(seq: Sequence) -> list[Stage]:
    """The stages of ``seq`` as `print_summary` lists them, not yet measured: each
    source, the batch plan, each transform, the sharding (NOTE [ Stage clock ] in
    ``pipeline/batch_making.py`` numbers them the same way)."""
    p = as_pipeline(seq)
    if p.structure == BATCHES:
        sources = [Stage("source", f"sequence: {describe(p.sources)}")]
    elif p.structure == SINGLE:
        sources = [Stage("source", f"source: {describe(p.sources)}")]
    else:
        items = p.sources.items() if p.structure == DICT else enumerate(p.sources)
        sources = [Stage("source", f"source {k!r}: {describe(s)}") for k, s in items]
    batch = Stage(
        "batch",
        f"batches(shuffle={p.shuffle!r})"
        if p.structure == BATCHES
        else f"batch(size={p.batch_size}, shuffle={p.shuffle!r})",
    )
    transforms = [
        Stage("transform", RANDOM_MARK + describe(t), random=True)
        if getattr(t, "random", False)
        else Stage("transform", describe(t))
        for t in p.transforms
    ]
    plan = p.plan
    shard = [Stage("shard", f"shard {plan.shard_index}/{plan.num_shards}")] if p.sharded else []
    return [*sources, batch, *transforms, *shard]


def _assembled(p: Pipeline, parts: list[Any]) -> Any:
    # The batch the sources' parts make, as the batch stage shows it.
    if p.structure == TUPLE:
        return tuple(parts)
    if p.structure == DICT:
        return dict(zip(p.sources, parts, strict=True))
    return parts[0]


def trace(seq: Sequence, num_batches: int = 3) -> list[Stage]:
    """Runs the first ``num_batches`` batches stage by stage and times each stage.

    One extra batch runs first, untimed, so that first-use costs (lazy imports, file
    opening) do not count.

    Returns:
        The stages in data order, each with its first batch's output and its times.
    """
    p = as_pipeline(seq)
    stages = stage_list(p)
    if isinstance(p.sources, Pipeline):
        stages[0].inner = trace(p.sources, num_batches)
    sources = p.num_source_stages
    parts: list[Any] = []
    last = 0.0
    warm_up = True

    def clock(position: int, out: Any) -> None:
        nonlocal last
        stage = stages[position]
        if not warm_up:
            stage.seconds.append(time.perf_counter() - last)
        if position < sources and warm_up:
            parts.append(out)
            if len(parts) == sources:
                stages[sources].output = _assembled(p, parts)
        if stage.output is None and position != sources:
            stage.output = out
        last = time.perf_counter()  # the clock's own time counts for no stage

    for index in [0, *range(min(num_batches, len(p)))]:
        last = time.perf_counter()
        p.get_batch(index, p.epoch, clock=clock)
        warm_up = False
    return stages
