import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import Pipeline
from sources import ParquetSource


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
    clone = pickle.loads(pickle.dumps(src))
    assert clone._handles == {} and clone[[5]]["id"].tolist() == [5]
    p = Pipeline(
        (ParquetSource(parquet_dir, "image"), ParquetSource(parquet_dir, "label")),
        batch_size=16,
        shuffle=True,
        seed=2,
    )
    seen = np.concatenate([x[:, 0, 0] for x, _ in p]).astype(int)
    assert sorted(seen.tolist()) == list(range(80))
    loaded = Pipeline.from_json(p.to_json())
    for (x1, y1), (x2, y2) in zip(p, loaded, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
