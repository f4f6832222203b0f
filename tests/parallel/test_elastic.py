"""Elastic exactly-once: an epoch stopped on one topology and resumed on others.

A run is cut into segments, each on its own topology (shard count, batch size,
executor), each resuming from the state the previous one saved (NOTE [ Elastic resume ]
in parallel/enqueuer.py). Over all segments and shards, every sample of every epoch is
delivered once, with the augmentation an uninterrupted single-shard run gives it.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.transforms import Lambda

from ._sequences import ChunkedArray

EPOCHS = 2
# How a segment computes batches: in the consumer's thread, threads, or processes.
EXECUTORS = {"inline": (0, False), "threads": (2, False), "1 process": (1, True)}
EXECUTORS["2 processes"] = (2, True)


def jitter(x, rng):
    """Per-sample noise in the columns after the id (column 0)."""
    return x + np.c_[np.zeros(len(x)), rng.normal(size=(len(x), 2))]


def _pipeline(n, batch_size, shuffle):
    x = np.c_[np.arange(n, dtype=np.float64), np.zeros((n, 2))]
    kwargs = {}
    if shuffle == "window":  # chunks of 1 to 7 samples, two to a window
        x = ChunkedArray(x, list(range(0, n, 1 + n % 7)))
        kwargs["window"] = 2
    seq = Pipeline(x, batch_size=batch_size, shuffle=shuffle, seed=4, **kwargs)
    return seq | Lambda(jitter, random=True)


def _reference(n, shuffle):
    """{(epoch, id): augmented bytes} of an uninterrupted single-shard run."""
    seq = _pipeline(n, 1, shuffle)
    return {
        (epoch, int(row[0])): row.tobytes()
        for epoch in range(EPOCHS)
        for i in range(seq.plan.num_batches)
        for row in seq.get_batch(i, epoch)
    }


def _run_segment(n, shuffle, segment, state, last):
    """Runs one segment in lockstep over its shards; returns the rows delivered with
    weight 1 as ``{(epoch, id): bytes}`` pairs (a list: repeats must show) and the
    state to resume from."""
    num_shards, batch_size, executor, stop = segment
    workers, processes = EXECUTORS[executor]
    base = _pipeline(n, batch_size, shuffle)
    shards = [base.shard(num_shards, k) if num_shards > 1 else base for k in range(num_shards)]
    enqueuers = [OrderedEnqueuer(s, processes, initial_state=state) for s in shards]
    epoch = enqueuers[0].epoch
    left = (
        0 if epoch >= EPOCHS else len(shards[0]) + (EPOCHS - 1 - epoch) * shards[0].plan.num_batches
    )
    steps = left if last else stop % (left + 1)
    delivered = []
    try:
        streams = []
        for enqueuer in enqueuers:
            enqueuer.start(workers=workers, max_queue_size=3)
            streams.append(enqueuer.get())
        for _ in range(steps):
            for enqueuer, stream in zip(enqueuers, streams, strict=True):
                batch = next(stream)
                x, w = batch if num_shards > 1 else (batch, np.ones(len(batch)))
                assert set(np.unique(w)) <= {0.0, 1.0}
                delivered += [
                    ((enqueuer.epoch, int(row[0])), row.tobytes())
                    for row, weight in zip(x, w, strict=True)
                    if weight == 1
                ]
        states = [json.loads(json.dumps(e.state())) for e in enqueuers]
    finally:
        for enqueuer in enqueuers:
            enqueuer.stop()
    # Shards in lockstep have consumed the same prefix: any one's state will do.
    assert len({(s["epoch"], s["position"]) for s in states}) == 1, states
    return delivered, states[-1]


segments = st.tuples(
    st.integers(1, 4),  # shards
    st.integers(1, 6),  # batch size
    st.sampled_from(sorted(EXECUTORS)),
    st.integers(0, 10**6),  # where the segment stops (modulo what is left)
)


@pytest.mark.timeout(600)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 30),
    shuffle=st.sampled_from([False, True, "batch", "window"]),
    plan=st.lists(segments, min_size=2, max_size=4),
)
def test_segments_on_changing_topologies_deliver_every_sample_once(n, shuffle, plan):
    state, delivered = None, []
    for i, segment in enumerate(plan):
        rows, state = _run_segment(n, shuffle, segment, state, last=i == len(plan) - 1)
        delivered += rows
    keys = [key for key, _ in delivered]
    assert len(keys) == len(set(keys)), "a sample was delivered twice in an epoch"
    # Every sample of every epoch, with the augmentation of the uninterrupted run.
    assert dict(delivered) == _reference(n, shuffle)


@pytest.mark.timeout(120)
def test_stop_on_two_shards_resume_on_three():
    # The README's example: 2 shards stop mid-epoch, 3 shards of another batch size
    # finish it, then run the next epoch on their own topology.
    n = 50
    first = [_pipeline(n, 4, True).shard(2, k) for k in range(2)]
    enqueuers = [OrderedEnqueuer(s) for s in first]
    seen = []
    for enqueuer in enqueuers:
        enqueuer.start(workers=0)
        stream = enqueuer.iter_epoch()
        for _ in range(3):
            x, w = next(stream)
            seen += x[w > 0, 0].astype(int).tolist()
    state = enqueuers[0].state()
    assert state["position"] == 24 == enqueuers[1].state()["position"]
    for k in range(3):
        shard = _pipeline(n, 5, True).shard(3, k)
        enqueuer = OrderedEnqueuer(shard, initial_state=state)
        enqueuer.start(workers=0)
        assert len(shard) == 2  # 26 samples left, 15 per step
        for x, w in enqueuer.iter_epoch():
            seen += x[w > 0, 0].astype(int).tolist()
        assert enqueuer.epoch == 1 and len(shard) == 4  # the next epoch: 50 / 15
    assert sorted(seen) == list(range(n))
