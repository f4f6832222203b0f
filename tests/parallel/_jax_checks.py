"""``seq.as_jax()`` with real JAX on 2 host devices, in a fresh process, then in 2
processes of one host device each (``jax.distributed`` on 127.0.0.1, gloo collectives).

``XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m
tests.parallel._jax_checks`` prints one JSON object; tests/parallel/test_frameworks.py
asserts on it.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seqpipe.pipeline import Pipeline
from tests.parallel._processes import checks_main, run_two_processes

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


MP_SAMPLES = 45


def process_main(rank, port, result_path):
    """One of 2 JAX processes: each reads its shard, the batches are global arrays."""
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=rank)
    mesh = jax.make_mesh((2,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    ids = np.arange(MP_SAMPLES, dtype=np.int32)
    seq = Pipeline((ids.astype(np.float32)[:, None], ids), batch_size=8, shuffle=True, seed=3)
    shards = [seq.shard(2, r) for r in range(2)]

    @jax.jit
    def weigh(counts, ids, weights):
        return counts.at[ids].add(weights)

    counts, rows_match = jnp.zeros(MP_SAMPLES), []
    iterator = seq.as_jax(NamedSharding(mesh, P("batch")), workers=1)
    for b, (_, batch_ids, weights) in enumerate(iterator):
        # The global batch: process 0's shard rows, then process 1's.
        expected = np.concatenate([s.get_batch(b, 0)[1] for s in shards])
        rows_match.append(
            np.array_equal(multihost_utils.process_allgather(batch_ids, tiled=True), expected)
        )
        counts = weigh(counts, batch_ids, weights)
    iterator.close()
    result = {
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "len": len(iterator),
        "rows_match": rows_match,
        "counts": multihost_utils.process_allgather(counts, tiled=True).tolist(),
    }
    with open(result_path, "w") as f:
        json.dump(result, f)


def multi_process_checks(out):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    codes, results = run_two_processes("tests.parallel._jax_checks", env)
    out["multi_process_exit_codes"], out["multi_process"] = codes, results


if __name__ == "__main__":
    checks_main([plain_checks, sharded_checks, multi_process_checks], process_main)
