import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import EpochPlan
from pipeline.plan import _batch_permutation, _sample_permutation

plans = st.builds(
    lambda n, b, shuffle, seed, drop, k: (n, b, shuffle, seed, drop, k),
    st.integers(1, 300),
    st.integers(1, 40),
    st.sampled_from([False, True, "batch"]),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.integers(1, 8),
)


def _all_shards(n, b, shuffle, seed, drop, k, epoch):
    shards = []
    for index in range(k):
        plan = EpochPlan(n, b, shuffle, seed, drop, num_shards=k, shard_index=index)
        shards.append([plan.batch(i, epoch) for i in range(plan.num_batches)])
    return shards


@settings(max_examples=300, deadline=None)
@given(plans, st.integers(0, 50))
def test_every_sample_exactly_once_per_epoch(args, epoch):
    n, b, shuffle, seed, drop, k = args
    per_step = b * k
    if drop and n < per_step:
        with pytest.raises(ValueError, match="no full batch"):
            EpochPlan(n, b, shuffle, seed, drop, num_shards=k)
        return
    shards = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    plan = EpochPlan(n, b, shuffle, seed, drop, num_shards=k)
    real = []
    for batches in shards:
        for spec in batches:
            weights = np.ones(len(spec.indices)) if k == 1 else spec.weights
            assert len(weights) == len(spec.indices)
            assert set(np.unique(weights)) <= {0.0, 1.0}
            real.extend(spec.indices[weights == 1].tolist())
    # Exactly once: no repeats among real rows, and they are the epoch's kept samples.
    assert len(real) == len(set(real))
    order = plan.epoch_order(epoch)
    assert sorted(real) == sorted(order[: plan.num_kept].tolist())
    # The documented dropped remainder is the tail of the epoch order, less than a step.
    assert plan.num_dropped == (n % per_step if drop else 0)
    assert set(order[plan.num_kept :].tolist()).isdisjoint(real)
    # Shards: equal batch counts and equal batch sizes, disjoint real samples.
    counts = {len(batches) for batches in shards}
    assert len(counts) == 1
    sizes = {tuple(len(s.indices) for s in batches) for batches in shards}
    assert len(sizes) == 1
    seen = [set() for _ in shards]
    for shard_seen, batches in zip(seen, shards, strict=True):
        for spec in batches:
            w = np.ones(len(spec.indices)) if k == 1 else spec.weights
            shard_seen.update(spec.indices[w == 1].tolist())
    for i in range(k):
        for j in range(i + 1, k):
            assert seen[i].isdisjoint(seen[j])
    if drop:
        assert all(len(s.indices) == b for batches in shards for s in batches)
        if k > 1:
            assert all(s.weights.all() for batches in shards for s in batches)


@settings(max_examples=100, deadline=None)
@given(plans, st.integers(0, 50))
def test_same_seed_and_epoch_give_the_same_plan(args, epoch):
    n, b, shuffle, seed, drop, k = args
    if drop and n < b * k:
        return
    first = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    _sample_permutation.cache_clear()
    _batch_permutation.cache_clear()
    second = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    for a_batches, b_batches in zip(first, second, strict=True):
        for a, c in zip(a_batches, b_batches, strict=True):
            np.testing.assert_array_equal(a.indices, c.indices)
            if k > 1:
                np.testing.assert_array_equal(a.weights, c.weights)


def test_shuffle_changes_with_epoch_and_seed():
    plan = EpochPlan(100, 10, shuffle=True, seed=3)
    e0 = plan.epoch_order(0)
    assert not np.array_equal(e0, plan.epoch_order(1))
    assert not np.array_equal(e0, EpochPlan(100, 10, shuffle=True, seed=4).epoch_order(0))
    assert sorted(e0.tolist()) == list(range(100))


def test_batch_shuffle_keeps_batches_contiguous():
    plan = EpochPlan(20, 5, shuffle="batch", seed=1)
    batches = [plan.batch(i, 0) for i in range(4)]
    assert all(b.as_slice() is not None for b in batches)
    starts = [b.as_slice().start for b in batches]
    assert sorted(starts) == [0, 5, 10, 15]
    assert starts != [0, 5, 10, 15] or [plan.batch(i, 1).as_slice().start for i in range(4)] != [
        0,
        5,
        10,
        15,
    ]


def test_padding_weights_and_example():
    plan = EpochPlan(5, 2, num_shards=2, shard_index=1)
    assert plan.num_batches == 2
    # Shard 0 owns samples 0-2, shard 1 owns 3-4 plus one weight-0 row.
    assert plan.batch(0, 0).indices.tolist() == [3, 4]
    last = plan.batch(1, 0)
    assert last.indices.tolist() == [4]
    assert last.weights.tolist() == [0.0]
    first_shard = EpochPlan(5, 2, num_shards=2, shard_index=0)
    assert first_shard.batch(1, 0).indices.tolist() == [2]
    assert first_shard.batch(1, 0).weights.tolist() == [1.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0, "batch_size": 1}, "num_samples=0"),
        ({"num_samples": 5, "batch_size": 0}, "batch_size=0"),
        ({"num_samples": 5, "batch_size": 1, "shuffle": "yes"}, "shuffle='yes'"),
        ({"num_samples": 5, "batch_size": 1, "seed": -1}, "seed=-1"),
        ({"num_samples": 5, "batch_size": 1, "num_shards": 2, "shard_index": 2}, "shard_index=2"),
        ({"num_samples": 5, "batch_size": 8, "drop_remainder": True}, "no full batch"),
    ],
)
def test_bad_fields_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EpochPlan(**kwargs)


def test_batch_index_out_of_range():
    with pytest.raises(IndexError, match="batch index 3"):
        EpochPlan(10, 4).batch(3, 0)
