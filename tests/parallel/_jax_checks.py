"""``seq.as_jax()`` with real JAX on 2 host devices, in a fresh process.

``XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m
tests.parallel._jax_checks`` prints one JSON object; tests/parallel/test_frameworks.py
asserts on it.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seqpipe.pipeline import Pipeline

N, BATCH = 64, 8


def make_data(n):
    ids = np.arange(n, dtype=np.int32)
    x = np.stack([ids, ids * 2, ids * 3], axis=1).astype(np.float32)
    return x, ids


@jax.jit
def count_step(counts, x, ids):
    """Counts each sample id of the batch (a jit-ed step over the global batch)."""
    return counts.at[ids].add(1), jnp.sum(x)


def plain_checks(out):
    x, ids = make_data(20)
    seq = Pipeline((x, ids), batch_size=8, shuffle=True, seed=1)
    batches = list(seq.as_jax())
    out["plain_types"] = sorted({type(a).__name__ for b in batches for a in b})
    out["plain_match"] = all(
        np.array_equal(np.asarray(a), e)
        for i, b in enumerate(batches)
        for a, e in zip(b, seq.get_batch(i, 0), strict=True)
    )


def sharded_checks(out):
    # Auto axes: the step's scatter needs no sharding annotations of its own.
    mesh = jax.make_mesh((2,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, P("batch"))
    x, ids = make_data(N)
    seq = Pipeline({"x": x, "id": ids}, batch_size=BATCH, shuffle=True, seed=2)
    iterator = seq.as_jax(sharding, workers=2)
    out["devices"] = len(jax.devices())
    out["len"] = len(iterator)
    rows_match, layouts, counts = [], set(), []
    for epoch in range(2):
        tally = jnp.zeros(N, jnp.int32)
        for i, batch in enumerate(iterator):
            expected = seq.get_batch(i, epoch)
            rows_match.append(
                all(np.array_equal(np.asarray(batch[k]), expected[k]) for k in ("x", "id"))
            )
            shards = batch["x"].addressable_shards
            layouts.add(
                (
                    batch["x"].sharding == sharding,
                    len({s.device for s in shards}),
                    tuple(s.data.shape[0] for s in shards),
                )
            )
            tally, _ = count_step(tally, batch["x"], batch["id"])
        counts.append(np.asarray(tally).tolist())
    iterator.close()
    out["rows_match"] = rows_match
    out["layouts"] = [list(layout) for layout in layouts]
    out["counts"] = counts

    # The short last batch cannot be split in two: a clear error.
    short = Pipeline((x[:13], ids[:13]), batch_size=8).as_jax(sharding)
    try:
        list(short)
        out["short_error"] = None
    except ValueError as error:
        out["short_error"] = str(error)


def main():
    out = {}
    plain_checks(out)
    sharded_checks(out)
    json.dump(out, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
