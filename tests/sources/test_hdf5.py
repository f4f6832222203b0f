import pickle

import h5py
import numpy as np
import pytest

from sources import HDF5Matrix


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
