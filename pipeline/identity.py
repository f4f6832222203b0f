"""A pipeline's identity: what a saved position (an enqueuer state, a trainer backup)
must match to mean the same samples, whatever the topology (NOTE [ Elastic resume ] in
``parallel/enqueuer.py``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .batches import DICT
from .config import serialize
from .structure import leaves

# Names the construction of epoch orders and of sharded steps in states and backups: a
# state saved under another construction described other batches and must not resume.
ORDER_VERSION = "prefix-steps-1"


def _describe(source: Any) -> Any:
    try:
        return serialize(source, "source", external_sources=True)
    except ValueError:  # a source without a saveable config: its kind and size
        return [type(source).__qualname__, len(source)]


def pipeline_identity(pipeline: Any) -> dict[str, Any]:
    """Returns ``{"order", "num_samples", "shuffle", "seed", "data"}`` (and ``"window"``).

    The order's construction, the sample count, the shuffle mode, the seed where it
    matters (shuffling or random transforms; else ``None``), and a hash of the sources'
    description (their configs: paths, datasets, shapes; in-memory arrays by shape and
    dtype, not by content). Not the topology: shards, batch size, workers.

    Args:
        pipeline: a `Pipeline`.

    Example:
        >>> import numpy as np
        >>> from seqpipe.pipeline import Pipeline
        >>> sorted(pipeline_identity(Pipeline(np.zeros(4), 2, seed=0)))
        ['data', 'num_samples', 'order', 'seed', 'shuffle']
    """
    plan = pipeline.plan
    random = any(getattr(t, "random", False) for t in pipeline.transforms)
    sources, structure = pipeline.sources, pipeline.structure
    if structure == DICT:
        described: Any = {str(k): _describe(s) for k, s in sources.items()}
    else:
        described = [_describe(s) for s in leaves(sources, structure)]
    text = json.dumps([structure, described], sort_keys=True, default=str)
    identity = {
        "order": ORDER_VERSION,
        "num_samples": plan.num_samples,
        "shuffle": plan.shuffle,
        "seed": plan.seed if plan.shuffle or random else None,
        "data": hashlib.sha256(text.encode()).hexdigest()[:16],
    }
    if plan.shuffle == "window":
        identity["window"] = plan.window
    return identity
