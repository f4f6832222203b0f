import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpipe.pipeline import Pipeline
from seqpipe.sources import ParquetSource


def _table(start, n):
    ids = np.arange(start, start + n)
    flat = pa.array(np.repeat(ids, 6).astype(np.float32))
    image = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, 3), 2)
    return pa.table({"image": image, "label": pa.array(ids % 4), "id": pa.array(ids)})


@pytest.fixture
def parquet_dir(tmp_path):
    directory = tmp_path / "rows"
    directory.mkdir()
    pq.write_table(_table(0, 50), directory / "part-0.parquet", row_group_size=16)
    pq.write_table(_table(50, 30), directory / "part-1.parquet", row_group_size=16)
    (directory / "notes.txt").write_text("ignored: not a .parquet file")
    return directory


def test_rows_of_a_directory_with_fixed_size_lists_as_nd_arrays(parquet_dir):
    src = ParquetSource(parquet_dir)
    assert len(src) == 80 and src.num_row_groups == 6
    assert src.columns == ["image", "label", "id"]
    batch = src[45:55]
    assert batch["id"].tolist() == list(range(45, 55))  # crosses the file boundary
    assert batch["image"].shape == (10, 2, 3) and batch["image"].dtype == np.float32
    assert np.all(batch["image"][:, 1, 2] == np.arange(45, 55))
    row = src[-1]
    assert row["id"] == 79 and row["image"].shape == (2, 3)


def test_row_groups_are_the_chunks_of_the_window_order(parquet_dir):
    from seqpipe.pipeline.window_order import WindowOrder

    src = ParquetSource(parquet_dir, columns="id")
    # Groups of 16 rows, each file's last one shorter: 50 = 16+16+16+2, 30 = 16+14.
    assert src.chunks.tolist() == [0, 16, 32, 48, 50, 66] and src.chunks.dtype == np.int64
    order = WindowOrder(src.chunks, len(src), window=2, seed=0, epoch=0)
    first = order.window_range(0)
    ids = src[order[first[0] : first[1]]]
    groups = np.searchsorted(src.chunks, ids, side="right") - 1
    assert sorted(set(groups.tolist())) == sorted(order.window_chunks(0).tolist())
    # A file without rows, between the two, adds no chunk.
    pq.write_table(_table(0, 0), parquet_dir / "part-05-empty.parquet")
    assert ParquetSource(parquet_dir, columns="id").chunks.tolist() == src.chunks.tolist()


def test_index_arrays_any_order_with_duplicates(parquet_dir):
    ids = ParquetSource(parquet_dir, columns="id")
    assert ids[[70, 3, 3, -1, 16]].tolist() == [70, 3, 3, 79, 16]
    assert ids[10:2:-3].tolist() == [10, 7, 4]
    assert ids[[]].tolist() == []
    with pytest.raises(IndexError, match="index 80 is out of range"):
        ids[[0, 80]]


def test_only_touched_row_groups_are_read(parquet_dir):
    src = ParquetSource(parquet_dir, columns=["id"])
    src[[20, 21]]
    assert list(src._cache) == [1]  # rows 16-31: the second group of the first file
    src[[60]]
    assert list(src._cache) == [1, 4]  # rows 50-65: the first group of the second file


def test_columns_choose_arrays_or_dicts_and_missing_columns_are_named(parquet_dir):
    assert isinstance(ParquetSource(parquet_dir, columns=["label"])[0:2], np.ndarray)
    pair = ParquetSource(parquet_dir, columns=["label", "id"])[0:2]
    assert set(pair) == {"label", "id"}
    with pytest.raises(
        KeyError, match=r"\['nope'\] not in .*available: \['image', 'label', 'id'\]"
    ):
        ParquetSource(parquet_dir, columns=["id", "nope"])


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ParquetSource(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError, match=r"no \.parquet files"):
        ParquetSource(tmp_path)
    bogus = tmp_path / "bogus.parquet"
    bogus.write_text("not parquet at all")
    with pytest.raises(ValueError, match=r"bogus\.parquet is not a readable Parquet file"):
        ParquetSource(bogus)
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"a": [1]}), other / "a.parquet")
    pq.write_table(pa.table({"b": [1]}), other / "b.parquet")
    with pytest.raises(ValueError, match=r"has columns \['b'\]"):
        ParquetSource(other)


def test_pickles_without_handles_and_feeds_a_pipeline(parquet_dir):
    src = ParquetSource(parquet_dir, columns=["image", "id"])
    src[0]
    blob = pickle.dumps(src)
    clone = pickle.loads(blob)
    assert not clone._cache and clone._pool is None and clone[[5]]["id"].tolist() == [5]
    assert clone._metadata[0].num_row_groups == 4  # footers travel; workers do not re-read them
    p = Pipeline(
        (ParquetSource(parquet_dir, "image"), ParquetSource(parquet_dir, "label")),
        batch_size=16,
        shuffle=True,
        seed=2,
    )
    seen = np.concatenate([x[:, 0, 0] for x, _ in p]).astype(int)
    assert sorted(seen.tolist()) == list(range(80))
    loaded = Pipeline.from_json(p.to_json())
    loaded.set_epoch(p.epoch)  # iterating p advanced it to epoch 1
    for (x1, y1), (x2, y2) in zip(p, loaded, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_in_order_reads_decode_ahead_and_give_the_same_rows(parquet_dir):
    src = ParquetSource(parquet_dir, columns=["id", "image"])
    batches = [src[lo : lo + 5] for lo in range(0, 80, 5)]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(80))
    assert src._pool is not None  # sequential slices started the decoding threads
    for b in batches:
        assert b["image"].flags.owndata and b["image"].flags.writeable
    shuffled = Pipeline(ParquetSource(parquet_dir, "id"), batch_size=7, shuffle="batch", seed=1)
    assert sorted(np.concatenate(list(shuffled)).tolist()) == list(range(80))


def test_columns_of_many_chunks_and_zero_copy_decoding(tmp_path):
    chunks = [_table(0, 10), _table(10, 7), _table(17, 13)]
    table = pa.concat_tables(chunks)  # one row group whose columns have three chunks
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    src = ParquetSource(tmp_path / "t.parquet", cache_bytes=1)
    decoded = src._decoded([0])[0]
    image = decoded["image"][0][1]
    assert image.shape[1:] == (2, 3) and not image.flags.owndata  # a view of Arrow's buffer
    assert src[[29, 0, 12, 12]]["id"].tolist() == [29, 0, 12, 12]
    sliced = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12.0)), 3).slice(1, 2)
    from seqpipe.sources.parquet import _to_numpy

    assert _to_numpy(sliced).tolist() == [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]


@pytest.mark.timeout(30)
def test_a_forked_copy_reads_with_its_own_threads_and_handles(parquet_dir):
    import multiprocessing

    src = ParquetSource(parquet_dir, columns="id")
    src[0:10], src[10:20]  # threads and handles exist in this process
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply(_read_all, (src,))
    assert got == list(range(80))


def _read_all(src):
    return np.concatenate([src[lo : lo + 16] for lo in range(0, 80, 16)]).tolist()


def test_file_uris_and_local_filesystem_objects(parquet_dir):
    import pyarrow.fs as pafs

    by_uri = ParquetSource(f"file://{parquet_dir}", columns="id")
    assert by_uri[45:55].tolist() == list(range(45, 55))
    assert ParquetSource(**by_uri.get_config())[[79]].tolist() == [79]
    by_object = ParquetSource(str(parquet_dir), "id", filesystem=pafs.LocalFileSystem())
    assert by_object[[3, 60]].tolist() == [3, 60]
    with pytest.raises(ValueError, match="LocalFileSystem object cannot be saved"):
        by_object.get_config()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch_size=st.integers(1, 40),
    shuffle=st.sampled_from([False, True, "batch"]),
    seed=st.integers(0, 2**16),
    cache_bytes=st.sampled_from([1, 2**20]),
)
def test_every_row_once_per_epoch_whatever_the_order_and_cache(
    parquet_dir, batch_size, shuffle, seed, cache_bytes
):
    src = ParquetSource(parquet_dir, columns=["id", "image"], cache_bytes=cache_bytes)
    seq = Pipeline(src, batch_size=batch_size, shuffle=shuffle, seed=seed)
    for epoch in range(2):
        seq.set_epoch(epoch)
        batches = [seq[i] for i in range(len(seq))]
        ids = np.concatenate([b["id"] for b in batches])
        assert sorted(ids.tolist()) == list(range(80))
        images = np.concatenate([b["image"] for b in batches])
        np.testing.assert_array_equal(images[:, 1, 2], ids.astype(np.float32))
