import mmap
import pickle

import h5py
import numpy as np
import pytest

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.parallel.direct import plan_direct_read
from seqpipe.pipeline import Pipeline
from seqpipe.sources import HDF5Matrix


def _ids(arr):
    return np.asarray(arr)[:, 0, 0, 0].astype(int).tolist()


def test_array_like_attributes(h5_file):
    x = HDF5Matrix(h5_file, "images", start=10, end=30)
    assert len(x) == 20 and x.shape == (20, 8, 8, 3) and x.dtype == np.uint8
    assert x.ndim == 4 and x.size == 20 * 8 * 8 * 3


def test_int_slice_and_step_indexing(h5_file):
    x = HDF5Matrix(h5_file, "images", start=10, end=30)
    assert x[0][0, 0, 0] == 10 and x[-1][0, 0, 0] == 29
    assert _ids(x[2:5]) == [12, 13, 14]
    assert _ids(x[::7]) == [10, 17, 24]
    assert _ids(x[5:1:-2]) == [15, 13]
    assert _ids(x[18:100]) == [28, 29]
    assert x[3:3].shape == (0, 8, 8, 3)


def test_unsorted_duplicate_and_negative_index_arrays(h5_file):
    x = HDF5Matrix(h5_file, "images", start=10, end=30)
    assert _ids(x[[5, 1, 5, -1, 0, 2, 3]]) == [15, 11, 15, 29, 10, 12, 13]
    assert _ids(x[np.array([19, 0])]) == [29, 10]
    assert x[[]].shape == (0, 8, 8, 3)
    mask = np.zeros(20, bool)
    mask[[1, 4]] = True
    assert _ids(x[mask]) == [11, 14]
    assert x[[2, 3], 0, 0, 0].tolist() == [12, 13]
    assert x[4, 0, 0].tolist() == [14, 14, 14]


def test_out_of_range_raises_index_error(h5_file):
    x = HDF5Matrix(h5_file, "images", start=10, end=30)
    for bad in (20, -21):
        with pytest.raises(IndexError, match="out of range"):
            x[bad]
    with pytest.raises(IndexError, match="index 20 is out of range"):
        x[[0, 20]]


def test_normalizer_applies_to_every_read(h5_file):
    x = HDF5Matrix(h5_file, "images", normalizer=lambda a: a.astype("float32") / 50)
    assert x.dtype == np.float32
    assert x[1][0, 0, 0] == pytest.approx(0.02)
    assert x[[2, 1]][:, 0, 0, 0].tolist() == pytest.approx([0.04, 0.02])
    assert x[2:4].dtype == np.float32


def test_clear_errors_for_missing_file_dataset_and_range(h5_file, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        HDF5Matrix(tmp_path / "nope.h5", "images")
    with pytest.raises(KeyError, match=r"'missing' not found.*group/ids"):
        HDF5Matrix(h5_file, "missing")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"notes\.h5 is not a readable HDF5 file"):
        HDF5Matrix(text, "images")
    with pytest.raises(ValueError, match="start=40, end=20"):
        HDF5Matrix(h5_file, "images", start=40, end=20)


def test_pickle_reopens_in_the_new_owner(h5_file):
    x = HDF5Matrix(h5_file, "group/ids", start=5)
    x[0]
    clone = pickle.loads(pickle.dumps(x))
    assert clone._file is None
    assert clone[[3, 0]].tolist() == [8, 5]


def test_large_shuffled_read_matches_numpy(tmp_path):
    path = tmp_path / "big.h5"
    data = np.random.default_rng(0).random((1000, 7)).astype("float32")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(64, 7))
    x = HDF5Matrix(path, "x")
    idx = np.random.default_rng(1).integers(-1000, 1000, 300)
    np.testing.assert_array_equal(x[idx], data[idx])


def _read_rows(x, rows):
    return x[rows][:, 0, 0, 0].tolist()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_reads_in_worker_processes_after_the_parent_opened_the_file(h5_file, method):
    import multiprocessing

    x = HDF5Matrix(h5_file, "images")
    assert x[0][0, 0, 0] == 0  # the parent holds an open handle when the workers start
    with multiprocessing.get_context(method).Pool(2) as pool:
        results = pool.starmap(_read_rows, [(x, [3, 1]), (x, [49, 0, 49])])
    assert results == [[3, 1], [49, 0, 49]]
    assert x[[7]][0, 0, 0, 0] == 7


# -- read_into and the enqueuer's read-direct path ------------------------------------


def test_read_into_fills_out_in_place_for_every_key(h5_file):
    x = HDF5Matrix(h5_file, "images", start=10, end=30)
    for key, ids in [
        (slice(2, 6), [12, 13, 14, 15]),
        (slice(0, 9, 4), [10, 14, 18]),
        ([5, 1, 5, -1], [15, 11, 15, 29]),
        (np.array([3, 4, 9, 8]), [13, 14, 19, 18]),
        (slice(4, 4), []),
    ]:
        out = np.full((len(ids), 8, 8, 3), 255, dtype=np.uint8)
        assert x.read_into(key, out) is out
        assert _ids(out) == ids and np.array_equal(out, x[key])


def test_read_into_with_a_normalizer_and_bad_arguments(h5_file):
    x = HDF5Matrix(h5_file, "images", normalizer=lambda a: a.astype("float32") / 50)
    out = np.empty((2, 8, 8, 3), np.float32)
    x.read_into([2, 1], out)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0.04, 0.02])
    raw = HDF5Matrix(h5_file, "images")
    with pytest.raises(ValueError, match=r"shape \(rows, 8, 8, 3\) and dtype uint8"):
        raw.read_into(slice(0, 2), np.empty((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="out has 3 rows for a read of 2 rows"):
        raw.read_into(slice(0, 2), np.empty((3, 8, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="slice or an index array"):
        raw.read_into(3, np.empty((1, 8, 8, 3), np.uint8))


def test_pipeline_reads_into_out_and_transforms_run_on_it(h5_file):
    images, labels = HDF5Matrix(h5_file, "images"), HDF5Matrix(h5_file, "labels")
    p = Pipeline((images, labels), batch_size=8, shuffle=True, seed=3)
    expected = p.get_batch(2, 1)
    out = (np.empty((8, 8, 8, 3), np.uint8), np.empty(8, np.int64))
    got = p.get_batch(2, 1, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    doubled = p | (lambda batch: (batch[0] * 2, batch[1]))
    got = doubled.get_batch(2, 1, out=(np.empty_like(out[0]), np.empty_like(out[1])))
    assert np.array_equal(got[0], expected[0] * 2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shuffle", [False, True])
def test_enqueuer_reads_hdf5_straight_into_shared_memory(tmp_path, shuffle):
    # 128 KiB per batch: large enough for the read-direct path.
    path = tmp_path / "big.h5"
    data = np.random.default_rng(0).integers(0, 255, (60, 64, 64, 4), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(4, 64, 64, 4))
        f.create_dataset("y", data=np.arange(60))
    p = Pipeline(
        {"x": HDF5Matrix(path, "x"), "y": HDF5Matrix(path, "y")},
        batch_size=8,
        shuffle=shuffle,
        seed=5,
    )
    assert plan_direct_read(p, 0).nbytes >= 8 * 64 * 64 * 4  # workers take the direct path
    with OrderedEnqueuer(p, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=3)
        got = list(enqueuer.iter_epoch())
    ids = np.concatenate([batch["y"] for batch in got])
    assert sorted(ids.tolist()) == list(range(60))  # every sample exactly once
    for index, batch in enumerate(got):
        assert np.array_equal(batch["x"], data[batch["y"]])
        assert np.array_equal(batch["y"], p.get_batch(index, 0)["y"])
        base = batch["x"]
        while isinstance(base, np.ndarray | memoryview):
            base = base.base if isinstance(base, np.ndarray) else base.obj
        assert isinstance(base, mmap.mmap)


@pytest.mark.parametrize(
    "layout",
    [
        {"chunks": None},  # contiguous: one byte range
        {"chunks": (7, 6, 5)},  # whole-row chunks, the last one partial
        {"chunks": (7, 3, 5)},  # chunks that cut rows: h5py reads them
        {"chunks": (7, 6, 5), "compression": "gzip"},  # filtered: h5py decodes
    ],
)
def test_raw_row_reads_match_h5py_for_every_layout(tmp_path, layout):
    from seqpipe.sources.hdf5_raw import RawRows

    path = tmp_path / "layouts.h5"
    data = np.random.default_rng(2).random((40, 6, 5)).astype("float32")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, **layout)
        f.create_dataset("sparse", shape=(40, 6, 5), dtype="float32", chunks=(8, 6, 5))
        f["sparse"][8:16] = 1.0  # the other chunks are never allocated: fill value 0
    x = HDF5Matrix(path, "x", start=3)
    plain = "compression" not in layout and layout["chunks"] in (None, (7, 6, 5))
    assert (RawRows.open(str(path), x.data) is not None) == plain
    for key in (slice(0, 37), slice(5, 19), [30, 2, 2, 11], slice(33, 36)):
        np.testing.assert_array_equal(x[key], data[3:][key])
        out = np.empty_like(data[3:][key])
        np.testing.assert_array_equal(x.read_into(key, out), data[3:][key])
    sparse = HDF5Matrix(path, "sparse")
    assert sparse[4:20][:, 0, 0].tolist() == [0.0] * 4 + [1.0] * 8 + [0.0] * 4
