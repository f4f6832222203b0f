"""Random augmentation through the enqueuer: the same bytes whoever computes a batch."""

import numpy as np
import pytest

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.transforms import (
    CutMix,
    MixUp,
    RandomBrightness,
    RandomFlip,
    RandomResizedCrop,
    RandomRotation,
    ToCategorical,
)

pytestmark = pytest.mark.timeout(90)
EPOCHS = 2


def _augmented(shard=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (44, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 5, 44)
    seq = (
        Pipeline((x, y), batch_size=8, shuffle=True, seed=21)
        | RandomResizedCrop(12, 12, on=0)
        | RandomFlip(on=0)
        | RandomRotation(0.1, on=0)
        | RandomBrightness(0.2, on=0)
        | ToCategorical(5, on=1)
        | MixUp(0.4)
        | CutMix()
    )
    return seq if shard is None else seq.shard(2, shard)


def _bytes(batch):
    return [(part.dtype.str, part.shape, part.tobytes()) for part in batch]


def _reference(seq, epochs=EPOCHS):
    return [[_bytes(seq.get_batch(i, e)) for i in range(len(seq))] for e in range(epochs)]


def _run(enqueuer, workers, epochs=EPOCHS):
    enqueuer.start(workers=workers, max_queue_size=4)
    try:
        return [[_bytes(b) for b in enqueuer.iter_epoch()] for _ in range(epochs)]
    finally:
        enqueuer.stop()


@pytest.mark.parametrize(
    "use_multiprocessing, workers",
    [(False, 0), (False, 3), (True, 1), (True, 2), (True, 4)],
    ids=["inline", "threads", "1-process", "2-processes", "4-processes"],
)
def test_batches_are_byte_identical_for_any_workers(use_multiprocessing, workers):
    expected = _reference(_augmented())
    got = _run(OrderedEnqueuer(_augmented(), use_multiprocessing=use_multiprocessing), workers)
    assert got == expected
    assert expected[0] != expected[1]  # epochs are augmented differently


def test_resume_mid_epoch_reproduces_the_rest_byte_for_byte():
    expected = _reference(_augmented(), epochs=3)
    first = OrderedEnqueuer(_augmented(), use_multiprocessing=True)
    first.start(workers=2, max_queue_size=3)
    delivered = [_bytes(b) for b in first.iter_epoch()]
    epoch = first.iter_epoch()
    delivered += [_bytes(next(epoch)) for _ in range(3)]
    state = first.state()
    epoch.close()
    first.stop()
    assert state["epoch"] == 1 and state["next_index"] == 3

    resumed = OrderedEnqueuer(_augmented(), use_multiprocessing=True, initial_state=state)
    resumed.start(workers=2, max_queue_size=3)
    try:
        rest = [_bytes(b) for b in resumed.iter_epoch()]
        rest += [_bytes(b) for b in resumed.iter_epoch()]
    finally:
        resumed.stop()
    flat = [b for epoch_batches in expected for b in epoch_batches]
    assert delivered + rest == flat


def test_shards_are_augmented_independently_and_identically_in_workers():
    shards = [_augmented(k) for k in range(2)]
    references = [_reference(s, epochs=1)[0] for s in shards]
    assert references[0] != references[1]
    got = _run(OrderedEnqueuer(_augmented(1), use_multiprocessing=True), 2, epochs=1)
    assert got[0] == references[1]
