import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import EpochPlan, Pipeline
from seqpipe.pipeline.permutation import MAX_SIZE, IndexPermutation

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
    order = np.asarray(plan.epoch_order(epoch))
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
    assume(not (drop and n < b * k))  # refused: test_every_sample_exactly_once_per_epoch
    first = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    second = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    for a_batches, b_batches in zip(first, second, strict=True):
        for a, c in zip(a_batches, b_batches, strict=True):
            np.testing.assert_array_equal(a.indices, c.indices)
            if k > 1:
                np.testing.assert_array_equal(a.weights, c.weights)


def test_shuffle_changes_with_epoch_and_seed():
    plan = EpochPlan(100, 10, shuffle=True, seed=3)
    e0 = np.asarray(plan.epoch_order(0))
    assert not np.array_equal(e0, plan.epoch_order(1))
    assert not np.array_equal(e0, EpochPlan(100, 10, shuffle=True, seed=4).epoch_order(0))
    assert sorted(e0.tolist()) == list(range(100))


def _batch_starts(plan, epoch):
    return [plan.batch(i, epoch).as_slice().start for i in range(plan.num_batches)]


def test_batch_shuffle_changes_with_epoch_and_seed():
    plan = EpochPlan(1000, 10, shuffle="batch", seed=3)
    e0 = _batch_starts(plan, 0)
    assert sorted(e0) == list(range(0, 1000, 10))
    assert e0 != _batch_starts(plan, 1)
    assert e0 != _batch_starts(EpochPlan(1000, 10, shuffle="batch", seed=4), 0)


@settings(max_examples=150, deadline=None)
@given(plans, st.integers(0, 50))
def test_shards_consume_the_epoch_order_as_a_prefix(args, epoch):
    # The exact semantics of NOTE [ Sharding and padding ]: step g's real rows, shard
    # after shard, are the next positions of the epoch order, so after any number of
    # steps all shards together delivered a prefix; padding repeats the step's first id.
    n, b, shuffle, seed, drop, k = args
    assume(not (drop and n < b * k))  # refused by the constructor (tested above)
    plan = EpochPlan(n, b, shuffle, seed, drop, num_shards=k)
    order = np.asarray(plan.epoch_order(epoch))
    shards = _all_shards(n, b, shuffle, seed, drop, k, epoch)
    delivered = []
    for step in range(plan.num_batches):
        lo = step * b * k
        for batches in shards:
            spec = batches[step]
            weights = np.ones(len(spec.indices)) if k == 1 else spec.weights
            real = spec.indices[weights == 1]
            delivered.extend(real.tolist())
            assert (spec.indices[weights == 0] == order[lo]).all()
            assert len(spec.indices) == plan.batch_rows(step)
        assert delivered == order[: plan.position_after(step + 1)].tolist()
    assert len(delivered) == plan.num_kept


@settings(max_examples=200, deadline=None)
@given(
    plans,
    st.integers(0, 20),
    st.integers(1, 40),
    st.integers(1, 8),
    st.integers(0, 10**6),
)
def test_any_prefix_resumes_exactly_on_another_topology(args, epoch, b2, k2, cut):
    # Stopped after some steps on (b, k), the rest of the epoch on (b2, k2) delivers
    # exactly the positions [P, end) of the same order: every sample once.
    n, b, shuffle, seed, drop, k = args
    # A drop_remainder plan needs one whole step: the constructor refuses others.
    assume(not drop or n >= max(b * k, b2 * k2))
    first = EpochPlan(n, b, shuffle, seed, drop, num_shards=k)
    steps = cut % (first.num_batches + 1)
    position = first.position_after(steps)
    block = b if shuffle == "batch" else None
    order = np.asarray(first.epoch_order(epoch))
    again = EpochPlan(n, b2, shuffle, seed, drop, num_shards=k2)
    rest = []
    for index in range(again.num_steps(position)):
        for shard in range(k2):
            plan = EpochPlan(n, b2, shuffle, seed, drop, num_shards=k2, shard_index=shard)
            spec = plan.batch(index, epoch, position, block)
            weights = np.ones(len(spec.indices)) if k2 == 1 else spec.weights
            rest.extend(spec.indices[weights == 1].tolist())
    assert rest == order[position : again.end(position)].tolist()
    if not drop:
        assert again.end(position) == n  # nothing skipped: the whole epoch, once


@pytest.mark.parametrize("shuffle", [True, "batch"])
@pytest.mark.parametrize("n", [10**9 + 7, 10**12, MAX_SIZE])
def test_huge_sharded_plans_stay_exact(n, shuffle):
    k, b = 8, 256
    shards = [EpochPlan(n, b, shuffle, 5, num_shards=k, shard_index=i) for i in range(k)]
    plan = shards[0]
    assert len({s.num_batches for s in shards}) == 1
    assert plan.num_batches == -(-n // (b * k))
    order = plan.epoch_order(3)
    seen = set()
    for shard in shards:
        for index in (0, shard.num_batches - 1):
            spec = shard.batch(index, 3)
            real = spec.indices[spec.weights == 1]
            assert ((real >= 0) & (real < n)).all()
            seen.update(real.tolist())
            rows = shard.batch_rows(index)
            lo = min(index * b * k + shard.shard_index * rows, n)
            np.testing.assert_array_equal(real, order[lo : min(lo + rows, n)])
    # Ids of different shards and batches never collide.
    assert len(seen) == sum(
        int((s.batch(i, 3).weights == 1).sum()) for s in shards for i in (0, s.num_batches - 1)
    )


def test_huge_drop_remainder_keeps_full_batches():
    n, b, k = 10**12 + 12345, 256, 4
    plan = EpochPlan(n, b, True, 1, drop_remainder=True, num_shards=k, shard_index=3)
    assert plan.num_dropped == n % (b * k)
    assert plan.num_batches == n // (b * k)
    last = plan.batch(plan.num_batches - 1, 0)
    assert len(last.indices) == b and last.weights.all()
    dropped = plan.epoch_order(0)[plan.num_kept :]
    assert len(dropped) == plan.num_dropped
    assert not set(dropped.tolist()) & set(last.indices.tolist())


class _VirtualIds:
    """A source of ``n`` samples whose sample ``i`` is ``i``; nothing is stored."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        if isinstance(key, slice):
            return np.arange(*key.indices(self.n), dtype=np.int64)
        return np.asarray(key, dtype=np.int64)


@settings(max_examples=12, deadline=None)
@given(
    n=st.sampled_from([10**6 + 3, 10**9, 10**12, MAX_SIZE]),
    shuffle=st.sampled_from([True, "batch"]),
    enqueuer_shuffle=st.booleans(),
    cut=st.integers(0, 12),
)
def test_resume_from_enqueuer_state_at_any_scale(n, shuffle, enqueuer_shuffle, cut):
    def make():
        return Pipeline(_VirtualIds(n), batch_size=256, shuffle=shuffle, seed=2)

    def run(enqueuer, count):
        gen = enqueuer.get()
        return [next(gen).tolist() for _ in range(count)]

    straight = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1)
    straight.start(workers=0)
    expected = run(straight, 12)
    straight.stop()
    first = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1)
    first.start(workers=0)
    head = run(first, cut)
    state = first.state()
    first.stop()
    # A handful of integers, whatever the dataset size.
    assert len(json.dumps(state)) < 400
    assert (state["epoch"], state["next_index"]) == (0, cut)
    resumed = OrderedEnqueuer(make(), shuffle=enqueuer_shuffle, seed=1, initial_state=state)
    resumed.start(workers=0)
    tail = run(resumed, 12 - cut)
    resumed.stop()
    assert head + tail == expected
    ids = [i for batch in expected for i in batch]
    assert len(set(ids)) == len(ids) and all(0 <= i < n for i in ids)


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
    # Step 0: shard 0 takes samples 0-1, shard 1 takes 2-3; step 1: one sample left,
    # sample 4 for shard 0, a weight-0 row for shard 1.
    assert plan.batch(0, 0).indices.tolist() == [2, 3]
    last = plan.batch(1, 0)
    assert last.indices.tolist() == [4]
    assert last.weights.tolist() == [0.0]
    first_shard = EpochPlan(5, 2, num_shards=2, shard_index=0)
    assert first_shard.batch(1, 0).indices.tolist() == [4]
    assert first_shard.batch(1, 0).weights.tolist() == [1.0]


def test_batch_shuffle_resumes_with_the_block_size_it_began_with():
    # Stopped after one step of 4-sample blocks, resumed with batches of 3: the rest of
    # the order is still the 4-block order, read in runs; later epochs use 3-blocks.
    plan4, plan3 = EpochPlan(20, 4, "batch", 6), EpochPlan(20, 3, "batch", 6)
    order = np.asarray(plan4.epoch_order(0))
    position = plan4.position_after(1)
    rest = [plan3.batch(i, 0, position, block=4).indices for i in range(plan3.num_steps(4))]
    assert np.concatenate(rest).tolist() == order[4:].tolist()
    assert all(np.diff(plan3.batch(i, 1).indices).tolist() == [1, 1] for i in range(6))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0, "batch_size": 1}, "num_samples=0"),
        ({"num_samples": -3, "batch_size": 1}, "num_samples=-3"),
        ({"num_samples": 2**62 + 1, "batch_size": 1}, f"num_samples={2**62 + 1}"),
        ({"num_samples": 2**64, "batch_size": 1}, f"num_samples={2**64}"),
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
    with pytest.raises(ValueError, match="epoch=-1"):
        EpochPlan(10, 4, shuffle="batch").batch(0, -1)


def test_epoch_order_is_lazy_and_matches_batches():
    plan = EpochPlan(2**62, 256, shuffle=True, seed=9)
    order = plan.epoch_order(4)
    assert isinstance(order, IndexPermutation) and len(order) == 2**62
    np.testing.assert_array_equal(plan.batch(7, 4).indices, order[7 * 256 : 8 * 256])
    assert EpochPlan(10, 3).epoch_order(0)[:].tolist() == list(range(10))
