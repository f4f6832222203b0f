"""How a `Pipeline` makes a batch from its `BatchPlan`: the sources read, the transforms
run in order (the random ones keyed per sample), the sharding weights attached, and each
stage reported to an optional clock.

NOTE [ Stage clock ]
`Pipeline.get_batch` takes an optional ``clock``, called with ``(stage, output)`` as
each stage of the batch ends, in the order the stages run: the batch plan, each source
read, each transform, the sharding weights. ``stage`` numbers them as `print_summary`
lists them (each source first, then the plan, the transforms and the shard), so a
caller that reads a clock between two calls knows each stage's time and output. Without
a clock the batch is made exactly as before; `print_summary`'s tracing and the timing of
stages in enqueuer workers (``parallel/stage_timing.py``) both pass one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..transforms import Transform, random_for
from .batches import BATCHES, attach_weights, leading_dim
from .plan import BatchPlan
from .structure import read_sources

# Called as ``clock(stage, output)`` when a stage of a batch ends (NOTE [ Stage clock ]).
StageClock = Callable[[int, Any], None]


def make_batch(
    pipeline: Any, spec: BatchPlan, epoch: int, out: Any = None, clock: StageClock | None = None
) -> Any:
    """The batch that ``spec`` describes, made by ``pipeline`` (`Pipeline.get_batch`)."""
    transforms = pipeline.transforms
    if clock is None:
        batch = read_batch(pipeline.sources, pipeline.structure, spec, out)
        for position in range(len(transforms)):
            batch = pipeline.apply_transform(position, batch, spec, epoch)
        return pipeline.add_weights(batch, spec)
    first = pipeline.num_source_stages
    clock(first, spec)
    batch = read_batch(pipeline.sources, pipeline.structure, spec, out, clock)
    for position in range(len(transforms)):
        batch = pipeline.apply_transform(position, batch, spec, epoch)
        clock(first + 1 + position, batch)
    batch = pipeline.add_weights(batch, spec)
    if spec.weights is not None:
        clock(first + 1 + len(transforms), batch)
    return batch


def transform_batch(
    transforms: tuple[Transform, ...],
    position: int,
    batch: Any,
    spec: BatchPlan,
    epoch: int,
    seed: int,
    structure: str,
) -> Any:
    """Runs ``transforms[position]`` on the batch ``spec`` describes
    (`Pipeline.apply_transform`)."""
    transform = transforms[position]
    if not getattr(transform, "random", False):
        return transform(batch)
    k = sum(bool(getattr(t, "random", False)) for t in transforms[:position])
    ids = spec.indices
    if structure == BATCHES:
        # A wrapped Sequence's batch is one sample of the plan: its rows are keyed by
        # (batch id, row).
        rows = np.arange(leading_dim(batch), dtype=np.int64)
        ids = (int(ids[0]) << 32) + rows
    return transform(batch, rng=random_for(transform, seed, epoch, k, ids))


def weigh_batch(batch: Any, spec: BatchPlan, structure: str) -> Any:
    """``batch`` with the sample weights of a sharded plan attached (else as is)."""
    if spec.weights is None:
        return batch
    weights = spec.weights
    if structure == BATCHES:
        weights = np.full(leading_dim(batch), weights[0], dtype=np.float32)
    return attach_weights(batch, weights)


def read_key(spec: BatchPlan) -> slice | np.ndarray:
    """What sources are indexed with for ``spec``: a slice when contiguous."""
    contiguous = spec.as_slice()
    return spec.indices if contiguous is None else contiguous


def read_batch(
    sources: Any, structure: str, spec: BatchPlan, out: Any = None, clock: StageClock | None = None
) -> Any:
    """The sources' rows for ``spec``, in their structure (a wrapped Sequence's batch)."""
    if structure == BATCHES:
        if out is not None:
            raise ValueError("out= needs array sources, not a wrapped Sequence")
        batch = sources[int(spec.indices[0])]
        if clock is not None:
            clock(0, batch)
        return batch
    return read_sources(sources, structure, read_key(spec), out, clock)
