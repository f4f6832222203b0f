"""What the workers of a multi-worker job must agree on, checked before training: a
disagreement raises, naming the field, instead of hanging in a collective.

Values are gathered from every replica of every worker (``all_gather``), so each worker
sees all of them and all raise together. TensorFlow is imported when used.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

# Gathered as float64: integers up to 2**53 are exact, so hashes are cut to 52 bits.
_HASH_BITS = 52


def digest52(value: Any) -> int:
    """A 52-bit hash of a JSON-able value (exact as a float64).

    Example:
        >>> digest52({"seed": 3}) == digest52({"seed": 3}), digest52(1) < 2**52
        (True, True)
    """
    text = json.dumps(value, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> (64 - _HASH_BITS)


def gather(strategy: Any, values: list[int]) -> np.ndarray:
    """Every replica's ``values`` (integers below ``2**53``), in replica order: shape
    ``(replicas in sync, len(values))``; replica 0 is on the chief."""
    import tensorflow as tf

    local = tf.constant([np.asarray(values, dtype=np.float64)])

    @tf.function
    def gathered() -> Any:
        def step() -> Any:
            return tf.distribute.get_replica_context().all_gather(local, axis=0)

        return strategy.run(step)

    return strategy.experimental_local_results(gathered())[0].numpy().astype(np.int64)


def chief_value(strategy: Any, num_workers: int, value: int) -> int:
    """The chief's ``value`` on every worker (a broadcast); ``value`` with one worker."""
    if num_workers == 1:
        return value
    return int(gather(strategy, [value])[0, 0])


def check_agreement(strategy: Any, num_workers: int, fields: dict[str, Any], what: str) -> None:
    """Raises unless every worker passed the same ``fields``.

    Args:
        strategy: the job's strategy.
        num_workers: its workers (nothing is checked with one).
        fields: ``{name: JSON-able value}``; integers are compared as they are, anything
            else by a 52-bit hash.
        what: what the fields describe, for the message (e.g. ``"the pipeline"``).

    Raises:
        ValueError: naming the fields the workers disagree on, with each worker's value
            (hashes for non-integers).
    """
    if num_workers == 1:
        return
    names = list(fields)
    values = [
        v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 else digest52(v)
        for v in fields.values()
    ]
    rows = gather(strategy, values)
    per_worker = rows.reshape(num_workers, -1, len(names))[:, 0, :]
    differ = [
        f"{name} (per worker: {per_worker[:, i].tolist()})"
        for i, name in enumerate(names)
        if len(set(per_worker[:, i].tolist())) > 1
    ]
    if differ:
        raise ValueError(
            f"the workers disagree on {what}: {', '.join(differ)}. Every worker must build "
            f"the same pipeline (pass seed=) and read the same backup_dir"
        )
