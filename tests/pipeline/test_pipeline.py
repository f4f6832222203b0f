import re

import numpy as np
import pytest

from seqpipe.pipeline import Pipeline, Sequence
from seqpipe.sources import HDF5Matrix
from seqpipe.transforms import Lambda, Normalize, ToCategorical


def _ids(n=10):
    return np.arange(n)


def test_single_tuple_and_dict_sources():
    x, y = _ids(), _ids() * 10
    assert Pipeline(x, batch_size=4)[1].tolist() == [4, 5, 6, 7]
    xb, yb = Pipeline((x, y), batch_size=4)[2]
    assert xb.tolist() == [8, 9] and yb.tolist() == [80, 90]
    batch = Pipeline({"a": x, "b": y}, batch_size=3)[0]
    assert set(batch) == {"a", "b"} and batch["b"].tolist() == [0, 10, 20]


def test_len_and_drop_remainder():
    assert len(Pipeline(_ids(10), batch_size=4)) == 3
    p = Pipeline(_ids(10), batch_size=4, drop_remainder=True)
    assert len(p) == 2
    assert np.concatenate(list(p)).tolist() == list(range(8))


def test_negative_and_out_of_range_batch_index():
    p = Pipeline(_ids(10), batch_size=4)
    assert p[-1].tolist() == [8, 9]
    with pytest.raises(IndexError, match="batch index 3"):
        p[3]
    with pytest.raises(TypeError, match="must be an int"):
        p[1.5]


def test_unequal_lengths_raise_with_lengths():
    with pytest.raises(ValueError, match=r"same length.*\{0: 10, 1: 9\}"):
        Pipeline((_ids(10), _ids(9)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size=0"):
        Pipeline(_ids(), batch_size=0)
    with pytest.raises(ValueError, match="shuffle='all'"):
        Pipeline(_ids(), shuffle="all")
    with pytest.raises(TypeError, match="array-like"):
        Pipeline(5)
    with pytest.raises(ValueError, match="at least one sample"):
        Pipeline(np.zeros((0, 3)))


def test_shuffle_is_a_pure_function_of_seed_and_epoch():
    p = Pipeline(_ids(100), batch_size=10, shuffle=True, seed=7)
    epoch0 = np.concatenate(list(p))
    assert sorted(epoch0.tolist()) == list(range(100))
    assert epoch0.tolist() != list(range(100))
    epoch1 = np.concatenate(list(p))  # each whole iteration is the next epoch
    assert epoch1.tolist() != epoch0.tolist() and p.epoch == 2
    again = Pipeline(_ids(100), batch_size=10, shuffle=True, seed=7)
    assert np.concatenate(list(again)).tolist() == epoch0.tolist()
    assert np.concatenate([again.get_batch(i, 1) for i in range(10)]).tolist() == epoch1.tolist()


def test_iterating_advances_the_epoch_only_after_a_whole_pass():
    p = Pipeline(_ids(30), batch_size=10, shuffle=True, seed=1)
    first = next(iter(p))
    assert p.epoch == 0  # stopped early: still epoch 0
    assert next(iter(p)).tolist() == first.tolist()
    assert len(list(p)) == 3 and p.epoch == 1
    assert next(iter(p)).tolist() != first.tolist()
    p.set_epoch(0)
    assert next(iter(p)).tolist() == first.tolist()


@pytest.mark.parametrize("bad", [1, 1.0, 0, "yes", None, np.int64(1)])
def test_shuffle_accepts_exactly_true_false_batch_and_window(bad):
    expected = f"shuffle must be False, True, 'batch' or 'window'. Received: shuffle={bad!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        Pipeline(_ids(10), batch_size=2, shuffle=bad)
    assert Pipeline(_ids(10), batch_size=2, shuffle=np.True_).shuffle is True


def add_noise(x, rng):
    return x + rng.random(len(x))


def test_seed_none_is_drawn_even_without_shuffling_and_recorded():
    # Random transforms are random: two pipelines without a seed differ, and the config
    # records the drawn seed, so loading it reproduces the run.
    add = Lambda(add_noise, random=True)
    a = Pipeline(np.zeros(8), batch_size=4) | add
    b = Pipeline(np.zeros(8), batch_size=4) | add
    assert a.seed != b.seed and a.seed_was_drawn
    assert not np.array_equal(a[0], b[0])
    config = a.get_config(external_sources=True)
    assert config["seed"] == a.seed
    again = Pipeline.from_config(config, sources={"0": np.zeros(8)})
    assert not again.seed_was_drawn
    np.testing.assert_array_equal(again[0], a[0])


def test_seed_none_is_drawn_once_and_kept():
    p = Pipeline(_ids(100), batch_size=10, shuffle=True)
    derived = p | (lambda b: b)
    assert p.seed == derived.seed
    assert p[0].tolist() == derived[0].tolist()


def test_batch_shuffle_reads_contiguous_batches():
    p = Pipeline(_ids(20), batch_size=5, shuffle="batch", seed=2)
    batches = [b.tolist() for b in p]
    assert sorted(batches) == [list(range(i, i + 5)) for i in range(0, 20, 5)]


def test_transforms_chain_and_pipelines_are_immutable():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    y = np.array([1, 0])
    base = Pipeline((x, y), batch_size=2)
    chained = base | Normalize(on=0) | ToCategorical(2, on=1) | Lambda(lambda b: b[0] * 2, on=None)
    assert base.transforms == ()
    assert len(chained.transforms) == 3
    np.testing.assert_allclose(chained[0], [[1.2, 1.6], [0.0, 0.0]])
    xb, _yb = base[0]
    np.testing.assert_array_equal(xb, x)


def test_plain_callable_is_wrapped_as_lambda():
    p = Pipeline(_ids(4), batch_size=2) | (lambda b: b + 100)
    assert p[1].tolist() == [102, 103]
    assert isinstance(p.transforms[0], Lambda)
    with pytest.raises(TypeError, match="Transform or a callable"):
        Pipeline(_ids(4)) | 3


def test_shard_adds_weights_to_every_structure():
    x = _ids(5)
    tuple_batch = Pipeline((x, x), batch_size=2).shard(2, 1)[1]
    assert len(tuple_batch) == 3 and tuple_batch[2].tolist() == [0.0]
    single = Pipeline(x, batch_size=2).shard(2, 0)[0]
    assert single[0].tolist() == [0, 1] and single[1].tolist() == [1.0, 1.0]
    d = Pipeline({"x": x}, batch_size=2).shard(2, 1)[0]
    assert d["sample_weight"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="already sharded"):
        Pipeline(x).shard(2, 0).shard(2, 0)


def test_shards_cover_the_epoch_exactly_once():
    x = _ids(23)
    p = Pipeline(x, batch_size=4, shuffle=True, seed=5)
    seen = []
    for k in range(3):
        shard = p.shard(3, k)
        assert len(shard) == len(p.shard(3, 0))
        for xb, w in shard:
            seen.extend(xb[w == 1].tolist())
    assert sorted(seen) == list(range(23))


class Squares(Sequence):
    def __init__(self):
        self.epochs_ended = 0

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return np.full(2, index + 10 * self.epochs_ended), np.full(2, index)

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_wrapping_a_user_sequence():
    seq = Squares()
    p = seq | Lambda(lambda x: x + 1, on=0)
    assert p.structure == "batches" and p.batch_size is None and len(p) == 3
    assert p[2][0].tolist() == [3, 3]
    p.on_epoch_end()
    assert seq.epochs_ended == 1 and p.epoch == 1
    assert p[0][0].tolist() == [11, 11]
    assert [b[1].tolist() for b in Squares()] == [[0, 0], [1, 1], [2, 2]]


def test_sharded_sequence_pads_with_zero_weight_batches():
    p = Pipeline(Squares())
    shards = [p.shard(2, k) for k in range(2)]
    assert [len(s) for s in shards] == [2, 2]
    weights = [b[2].tolist() for s in shards for b in s]
    assert sorted(weights) == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]


def test_hdf5_source_reads_contiguous_and_shuffled(h5_file):
    x = HDF5Matrix(h5_file, "images")
    y = HDF5Matrix(h5_file, "labels")
    p = Pipeline((x, y), batch_size=8, shuffle=True, seed=0) | ToCategorical(5, on=1)
    ids = []
    for xb, yb in p:
        row_ids = xb[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(yb.argmax(1), row_ids % 5)
        ids.extend(row_ids.tolist())
    assert sorted(ids) == list(range(50))


def test_set_epoch_validates():
    p = Pipeline(_ids(), shuffle=True, seed=1)
    p.set_epoch(3)
    assert p.epoch == 3
    with pytest.raises(ValueError, match="epoch=-1"):
        p.set_epoch(-1)


def test_nested_sources_give_nested_batches_and_round_trip_through_configs():
    # The targets of a model with several outputs: (x, {"reg": ..., "cls": (a, b)}).
    x = np.arange(6)
    p = Pipeline((x, {"reg": x * 1.5, "cls": (x, x % 2)}), batch_size=4)
    xb, yb = p[1]
    assert xb.tolist() == [4, 5] and yb["reg"].tolist() == [6.0, 7.5]
    assert [a.tolist() for a in yb["cls"]] == [[4, 5], [0, 1]]
    config = p.get_config(external_sources=True)
    names = {"0": x, "1.reg": x * 1.5, "1.cls.0": x, "1.cls.1": x % 2}
    again = Pipeline.from_config(config, sources=names)
    assert again[1][1]["cls"][1].tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"of one length. Received lengths \{'a': 6, 'b': 5\}"):
        Pipeline((x, {"a": x, "b": x[:5]}), batch_size=2)


class _Chunked:
    """A source of ``n`` ids in chunks starting at ``chunks``."""

    def __init__(self, n, chunks):
        self.chunks = np.asarray(chunks)
        self._n = n

    def __len__(self):
        return self._n

    def __getitem__(self, key):
        return np.arange(self._n)[key]


def test_window_shuffle_reads_window_by_window_and_needs_chunks():
    chunks = [0, 10, 20, 30, 40, 50]  # six chunks of ten
    p = Pipeline(_Chunked(60, chunks), batch_size=10, shuffle="window", window=2, seed=3)
    epoch = [b.tolist() for b in p]
    assert sorted(i for batch in epoch for i in batch) == list(range(60))
    # Each window of two chunks is delivered whole before the next: 20 positions.
    windows = [{i for batch in epoch[w : w + 2] for i in batch} for w in range(0, 6, 2)]
    assert all(len({i // 10 for i in w}) == 2 for w in windows)
    assert [b.tolist() for b in p] != epoch  # the next epoch, another order
    assert p.identity()["window"] == 2 and p.identity()["shuffle"] == "window"
    with pytest.raises(ValueError, match="no source here has them"):
        Pipeline(np.arange(10), batch_size=2, shuffle="window")
    with pytest.raises(ValueError, match="window= goes with shuffle='window'"):
        Pipeline(np.arange(10), batch_size=2, shuffle=True, window=2)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        Pipeline(_Chunked(60, chunks), shuffle="window", window=0)
