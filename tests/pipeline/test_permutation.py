import itertools
import pickle
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqpipe.pipeline.permutation import MAX_SIZE, IndexPermutation

PRIMES = [3, 5, 7, 13, 251, 8191, 65521, 99991]
POWERS_OF_TWO_PLUS_MINUS_ONE = sorted(
    {2**k + d for k in range(1, 17) for d in (-1, 0, 1)} - {1, 2, 3}
)
EDGE_SIZES = [1, 2, *PRIMES, *POWERS_OF_TWO_PLUS_MINUS_ONE]


def _is_permutation(order, n):
    return order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(n))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 100_000), st.integers(0, 2**64), st.integers(0, 10**6))
def test_bijection_for_random_sizes(n, seed, epoch):
    assert _is_permutation(np.asarray(IndexPermutation(n, seed, epoch, 0)), n)


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_bijection_for_edge_sizes(n):
    for seed in range(3):
        assert _is_permutation(np.asarray(IndexPermutation(n, seed, 0)), n)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.integers(1, MAX_SIZE), st.sampled_from([MAX_SIZE, 2**61 + 1, 2**40 - 1])),
    st.integers(0, 2**32),
    st.lists(st.integers(0, 2**62), min_size=1, max_size=50),
)
def test_huge_sizes_int_slice_and_array_indexing_agree(n, seed, raw):
    p = IndexPermutation(n, seed, 5)
    positions = np.array([r % n for r in raw], dtype=np.int64)
    ids = p[positions]
    assert ids.dtype == np.int64 and ids.shape == positions.shape
    assert ((ids >= 0) & (ids < n)).all()
    # Injective: distinct positions give distinct ids.
    assert len(np.unique(ids)) == len(np.unique(positions))
    assert [p[int(i)] for i in positions] == ids.tolist()
    start = int(positions[0])
    stop = min(start + 100, n)  # over 32 positions: the numpy lanes, not Python ints
    assert p[start:stop].tolist() == [p[i] for i in range(start, stop)]
    np.testing.assert_array_equal(p[start : start + 7], p[np.arange(start, min(start + 7, n))])
    assert p[-1] == p[n - 1] and p[[-1]][0] == p[n - 1]


def test_indexing_shapes_and_iteration():
    p = IndexPermutation(50, 1, 2)
    full = np.asarray(p)
    assert list(p) == full.tolist() and len(p) == 50
    np.testing.assert_array_equal(p[::-3], full[::-3])
    np.testing.assert_array_equal(p[np.array([[3, 4], [0, 49]])], full[[[3, 4], [0, 49]]])
    assert np.asarray(p, dtype=np.int32).dtype == np.int32
    assert pickle.loads(pickle.dumps(p))[:].tolist() == full.tolist()
    assert repr(p) == "IndexPermutation(50, 1, 2)"


def test_without_entropy_it_is_the_identity():
    assert IndexPermutation(7)[:].tolist() == list(range(7))
    assert IndexPermutation(10**12)[10**12 - 1] == 10**12 - 1


def test_bad_arguments_are_named():
    for size in (0, -5, MAX_SIZE + 1, True, 2.0):
        with pytest.raises(ValueError, match=f"size={size!r}"):
            IndexPermutation(size)
    with pytest.raises(ValueError, match="entropy"):
        IndexPermutation(5, -1)
    p = IndexPermutation(5, 1)
    for bad in (5, -6, [0, 5], np.array([2**64 - 1], dtype=np.uint64)):
        with pytest.raises(IndexError, match="out of range"):
            p[bad]
    with pytest.raises(TypeError, match="integer arrays"):
        p[np.array([0.5])]
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # asarray(copy=) is numpy 2's
        with pytest.raises(ValueError, match="copies"):
            np.asarray(p, copy=False)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.integers(20, MAX_SIZE), st.sampled_from([20, 100, 10**6, 10**12, MAX_SIZE])),
    st.integers(0, 2**64),
    st.integers(0, 10**9),
)
def test_epochs_seeds_and_streams_give_different_orders(n, seed, epoch):
    # With n >= 20 two independent orders agree on their first 20 positions with
    # probability at most 1/20!, so any equality here is a bug.
    head = IndexPermutation(n, seed, epoch, 0)[:20].tolist()
    for other in [(seed, epoch + 1, 0), (seed + 1, epoch, 0), (seed, epoch, 1), (epoch, seed, 0)]:
        if other != (seed, epoch, 0):
            assert IndexPermutation(n, *other)[:20].tolist() != head
    assert IndexPermutation(n, seed, epoch, 0)[:20].tolist() == head


def test_a_batch_of_a_huge_domain_allocates_o_batch_memory():
    p = IndexPermutation(10**12, 3, 1)
    tracemalloc.start()
    try:
        p[5 * 10**11 : 5 * 10**11 + 256]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# -- statistical quality ------------------------------------------------------------------


def test_rank_correlation_between_position_and_id_is_negligible():
    n = 10**6
    for seed in range(2):
        order = np.asarray(IndexPermutation(n, seed, 0, 0))
        # Both sequences are ranks already, so Pearson's r is Spearman's rho.
        rho = np.corrcoef(np.arange(n, dtype=np.float64), order.astype(np.float64))[0, 1]
        assert abs(rho) < 0.01


def test_each_position_is_uniform_over_seeds():
    n, seeds = 8, 2000
    counts = np.zeros((n, n), dtype=np.int64)  # counts[id, position]
    for seed in range(seeds):
        p = IndexPermutation(n, seed, 0, 0)
        counts[[p[i] for i in range(n)], np.arange(n)] += 1  # the int path: fastest here
    assert (counts.sum(axis=1) == seeds).all()
    expected = seeds / n
    chi_square = ((counts - expected) ** 2 / expected).sum(axis=1)
    # p > 0.001 with 7 degrees of freedom: scipy.stats.chi2.isf(0.001, 7) = 24.3219
    # (a constant, so the suite does not import scipy.stats for one number).
    assert (chi_square < 24.3219).all(), chi_square


def test_first_positions_of_consecutive_epochs_are_uncorrelated():
    n, epochs = 10**6, 400
    heads = np.stack([IndexPermutation(n, 11, e, 0)[:10] for e in range(epochs + 1)])
    now, following = heads[:-1].ravel(), heads[1:].ravel()
    r = np.corrcoef(now.astype(np.float64), following.astype(np.float64))[0, 1]
    assert abs(r) < 0.06  # ~4 standard errors for 4,000 independent pairs
    # The same ids hardly ever come back early: 10 of 10^6 ids, so ~0.0001 per epoch.
    shared = sum(len(np.intersect1d(a, b)) for a, b in itertools.pairwise(heads))
    assert shared <= 2
