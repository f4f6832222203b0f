"""The window order of ``shuffle="window"``: a bijection that keeps windows chunk-local.

``test_shuffle_quality`` prints the figures quoted in the README (run with ``-s``).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqpipe.pipeline.permutation import IndexPermutation
from seqpipe.pipeline.window_order import WindowOrder, check_chunks


@st.composite
def chunked(draw):
    """``(chunks, num_samples)``: 1-40 chunks of 1-50 samples."""
    sizes = draw(st.lists(st.integers(1, 50), min_size=1, max_size=40))
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), int(sum(sizes))


@settings(max_examples=150, deadline=None)
@given(chunked(), st.integers(1, 45), st.integers(0, 2**40), st.integers(0, 1000))
def test_every_sample_once_and_windows_hold_exactly_their_chunks(layout, window, seed, epoch):
    chunks, n = layout
    order = WindowOrder(chunks, n, window, seed, epoch)
    ids = order[:]
    assert ids.dtype == np.int64 and np.array_equal(np.sort(ids), np.arange(n))
    chunk_of = np.searchsorted(chunks, ids, side="right") - 1
    seen = []
    for w in range(order.num_windows):
        start, stop = order.window_range(w)
        mine = order.window_chunks(w)
        assert len(mine) == min(window, len(chunks) - w * window)
        assert set(chunk_of[start:stop].tolist()) == set(mine.tolist())
        sizes = np.diff(np.append(chunks, n))
        assert stop - start == sizes[mine].sum()  # all of their samples, nothing else
        assert (order.window_of(np.arange(start, stop)) == w).all()
        seen += mine.tolist()
    assert sorted(seen) == list(range(len(chunks)))  # every chunk in exactly one window


@settings(max_examples=60, deadline=None)
@given(chunked(), st.integers(1, 8), st.integers(0, 2**32), st.data())
def test_int_slice_and_array_lookups_agree_and_are_pure(layout, window, seed, data):
    chunks, n = layout
    order = WindowOrder(chunks, n, window, seed, 3)
    full = order[:]
    positions = np.array(data.draw(st.lists(st.integers(-n, n - 1), max_size=70)), np.int64)
    assert order[positions].tolist() == full[positions].tolist()
    assert [order[int(p)] for p in positions] == full[positions].tolist()
    lo = data.draw(st.integers(0, n - 1))
    assert order[lo : lo + 70].tolist() == full[lo : lo + 70].tolist()
    assert order[positions.reshape(-1, 1)].shape == (len(positions), 1)
    # A pure function of its arguments: recomputed anywhere, it agrees.
    np.testing.assert_array_equal(WindowOrder(chunks, n, window, seed, 3)[:], full)
    np.testing.assert_array_equal(np.asarray(order), full)


def test_epochs_and_seeds_give_other_orders_and_window_one_reads_chunk_by_chunk():
    chunks = np.arange(0, 1000, 100)
    orders = {
        (s, e): WindowOrder(chunks, 1000, 3, s, e)[:].tolist() for s in (0, 1) for e in (0, 1)
    }
    assert len({tuple(o) for o in orders.values()}) == 4
    one = WindowOrder(chunks, 1000, 1, 0, 0)[:]
    assert all(len(set((one[i : i + 100] // 100).tolist())) == 1 for i in range(0, 1000, 100))
    # One window of every chunk is a full shuffle of the samples.
    everything = WindowOrder(chunks, 1000, 10, 0, 0)
    assert everything.num_windows == 1 and everything.window_range(0) == (0, 1000)


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match=r"start at 0 and strictly increase.*\[0, 5, 5\]"):
        WindowOrder([0, 5, 5], 10, 1, 0, 0)
    with pytest.raises(ValueError, match=r"below num_samples=10"):
        check_chunks([0, 10], 10)
    with pytest.raises(ValueError, match="non-empty 1-D integer array"):
        check_chunks([], 10)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1.*Received: window=0"):
        WindowOrder([0], 10, 0, 0, 0)
    order = WindowOrder([0, 4], 10, 1, 0, 0)
    with pytest.raises(IndexError, match=r"position 10 out of range"):
        order[[10]]
    with pytest.raises(TypeError, match="ints, slices or integer arrays"):
        order[[0.5]]


def _entropy_bits(labels):
    counts = np.bincount(labels)
    p = counts[counts > 0] / len(labels)
    return float(-(p * np.log2(p)).sum())


def _quality(ids, labels, batch):
    """(|Spearman rho| of position vs id, mean per-batch label entropy in bits)."""
    positions = np.arange(len(ids))
    rho = np.corrcoef(positions, ids)[0, 1]  # both are ranks already: Pearson = Spearman
    entropy = np.mean(
        [_entropy_bits(labels[ids[i : i + batch]]) for i in range(0, len(ids), batch)]
    )
    return abs(rho), entropy


def test_shuffle_quality():
    # 64 shards of 250 samples, 10 classes, batches of 64. "sorted": shards written in
    # class order (the worst case: each shard holds one or two classes); "mixed": labels
    # independent of the shard (shards shuffled when written, as WebDataset advises).
    n, per_chunk, batch = 16_000, 250, 64
    chunks = np.arange(0, n, per_chunk)
    rng = np.random.default_rng(0)
    layouts = {"sorted": np.arange(n) * 10 // n, "mixed": rng.integers(0, 10, n)}
    rows = []
    for name, labels in layouts.items():
        full = [_quality(IndexPermutation(n, s, 0, 0)[:], labels, batch) for s in range(3)]
        rows.append((name, "shuffle=True", *np.mean(full, axis=0)))
        for window in (1, 2, 8, 64):
            got = [
                _quality(WindowOrder(chunks, n, window, s, 0)[:], labels, batch) for s in range(3)
            ]
            rows.append((name, f"window={window}", *np.mean(got, axis=0)))
    print("\nlabels | order | |rank corr| position vs id | label entropy per batch (bits)")
    for row in rows:
        print(f"{row[0]} | {row[1]} | {row[2]:.4f} | {row[3]:.3f}")
    quality = {(r[0], r[1]): r[2:] for r in rows}
    for name in layouts:
        full_rho, full_entropy = quality[name, "shuffle=True"]
        assert full_rho < 0.02
        # The chunk order is shuffled too: positions say little about ids.
        assert all(quality[name, f"window={w}"][0] < 0.25 for w in (1, 2, 8, 64))
        assert quality[name, "window=64"][1] == pytest.approx(full_entropy, abs=0.05)
    # Independent labels: any window mixes as well as a full shuffle.
    assert quality["mixed", "window=2"][1] == pytest.approx(
        quality["mixed", "shuffle=True"][1], abs=0.05
    )
    # Class-sorted shards: entropy grows with the window, and window=1 is far from full.
    sorted_entropy = [quality["sorted", f"window={w}"][1] for w in (1, 2, 8, 64)]
    assert sorted_entropy == sorted(sorted_entropy)
    assert sorted_entropy[0] < 0.5 * quality["sorted", "shuffle=True"][1]
