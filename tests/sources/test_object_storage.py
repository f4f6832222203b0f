"""ParquetSource and ImageFiles on s3:// against a real S3 endpoint on 127.0.0.1 (moto).

Requests are counted on the server side (the proxy of ``_s3_server.py`` sits between the
sources and moto), across the test process and the enqueuer's worker processes.
"""

import collections
import importlib.util
import io
import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.sources import ImageFiles, ParquetSource

from ._s3_server import S3Server

pytest.importorskip("moto.server")

ROWS, PER_FILE, GROUP = 128, 64, 16
CLASSES, PER_CLASS = ["cat", "dog", "eel"], [3, 4, 2]


def _png(value):
    """A 6x5 PNG whose pixels all equal ``value``: images carry their own ids."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _table(start, n):
    ids = np.arange(start, start + n)
    pixels = pa.array(np.repeat(ids % 251, 12).astype(np.uint8))
    image = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pixels, 3), 4)
    return pa.table({"id": pa.array(ids), "image": image, "label": pa.array(ids % 3)})


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        fs = server.filesystem()
        fs.create_dir("data")
        for k, name in enumerate(CLASSES):
            for i in range(PER_CLASS[k]):
                with fs.open_output_stream(f"data/images/{name}/{i:02d}.png") as out:
                    out.write(_png(10 * k + i))
        with fs.open_output_stream("data/images/notes.txt") as out:
            out.write(b"not a class folder")
        for i in range(ROWS // PER_FILE):
            pq.write_table(
                _table(i * PER_FILE, PER_FILE),
                f"data/rows/part-{i}.parquet",
                filesystem=fs,
                row_group_size=GROUP,
            )
        yield server


def _ids(batches):
    return np.concatenate([b[0] if isinstance(b, tuple) else b for b in batches]).tolist()


def _chunk_bytes(source, groups, column="id"):
    """Bytes of ``column``'s chunks in global row groups ``groups`` (from the footers)."""
    total = 0
    for k in groups:
        f, g = source._groups[k]
        group = source._metadata[f].row_group(g)
        for j in range(group.num_columns):
            if group.column(j).path_in_schema.split(".")[0] == column:
                total += group.column(j).total_compressed_size
    return total


def _fetched(server):
    """(path, Range) -> how many times it was fetched, for object GETs."""
    return collections.Counter((r.path, r.range) for r in server.gets())


def test_a_directory_uri_reads_rows_and_only_the_row_groups_touched(s3):
    src = ParquetSource(s3.uri("data/rows/"), columns=["id", "image"])
    assert len(src) == ROWS and src.num_row_groups == ROWS // GROUP
    s3.clear()
    batch = src[60:70]  # crosses from the last group of part-0 to the first of part-1
    assert batch["id"].tolist() == list(range(60, 70))
    assert batch["image"].shape == (10, 4, 3) and batch["image"].dtype == np.uint8
    assert np.all(batch["image"][:, 3, 2] == np.arange(60, 70))
    heads = [r for r in s3.log if r.method == "HEAD"]
    assert heads == []  # sizes come from the listing: no request per read to learn them
    fetched = sum(r.nbytes for r in s3.gets())
    assert fetched == _chunk_bytes(src, [3, 4], "id") + _chunk_bytes(src, [3, 4], "image")
    assert {r.path for r in s3.gets()} == {"/data/rows/part-0.parquet", "/data/rows/part-1.parquet"}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(-ROWS, ROWS - 1), min_size=0, max_size=20))
def test_index_arrays_read_remote_rows_in_order(s3, ids):
    src = ParquetSource(s3.uri("data/rows"), columns="id")
    expected = [i % ROWS for i in ids]
    assert src[ids].tolist() == expected


@pytest.mark.timeout(60)
def test_two_worker_processes_deliver_every_row_once_per_epoch(s3):
    seq = Pipeline(ParquetSource(s3.uri("data/rows/"), columns="id"), batch_size=10, shuffle=True)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        epochs = [_ids(list(enqueuer.iter_epoch())) for _ in range(2)]
    assert [sorted(e) for e in epochs] == [list(range(ROWS))] * 2
    assert epochs[0] != epochs[1]  # a new permutation, read remotely by the workers


def test_shards_fetch_each_row_group_they_read_once(s3):
    # Shards take interleaved slices of every step (NOTE [ Sharding and padding ]), so
    # each reads blocks from across the file, not a contiguous half: it fetches every row
    # group it touches once per epoch, and no group it does not touch.
    src = ParquetSource(s3.uri("data/rows/"), columns="id")
    seq = Pipeline(src, batch_size=8, shuffle="batch", seed=3)
    delivered = []
    for shard in range(2):
        part = seq.shard(2, shard)
        fresh = pickle.loads(pickle.dumps(part))  # as a worker or host gets it
        s3.clear()
        ids = _ids([fresh[i] for i in range(len(fresh))])
        planned = np.concatenate([part.batch_plan(i, 0).indices for i in range(len(part))])
        assert ids == planned.tolist()
        delivered += ids
        groups = sorted(set((planned // GROUP).tolist()))
        plan_bytes = _chunk_bytes(src, groups)
        got = sum(r.nbytes for r in s3.gets())
        assert plan_bytes <= got <= 1.1 * plan_bytes
        assert max(_fetched(s3).values()) == 1  # each chunk once per epoch
    assert sorted(delivered) == list(range(ROWS))


@pytest.mark.timeout(60)
def test_disk_cache_fetches_each_chunk_once_across_workers_then_nothing(s3, tmp_path):
    src = ParquetSource(s3.uri("data/rows"), columns="id", cache_dir=tmp_path / "cache")
    seq = Pipeline(src, batch_size=4, shuffle=True, seed=1)
    s3.clear()
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        first = _ids(list(enqueuer.iter_epoch()))
        counts = _fetched(s3)
        s3.clear()
        second = _ids(list(enqueuer.iter_epoch()))
    assert sorted(first) == sorted(second) == list(range(ROWS))
    assert len(counts) == ROWS // GROUP and set(counts.values()) == {1}
    assert s3.log == []  # the second epoch: no remote request at all
    # A new source (a new job) on the same cache also reads from disk only.
    again = ParquetSource(s3.uri("data/rows"), columns="id", cache_dir=tmp_path / "cache")
    s3.clear()
    assert again[0:ROWS].tolist() == list(range(ROWS))
    assert s3.gets() == []


def test_disk_cache_stays_within_its_budget(s3, tmp_path):
    src = ParquetSource(
        s3.uri("data/rows"), columns="id", cache_dir=tmp_path, cache_dir_bytes=300, cache_bytes=1
    )
    assert src[0:ROWS].tolist() == list(range(ROWS))
    sizes = [p.stat().st_size for p in tmp_path.iterdir() if p.is_file()]
    assert sizes and sum(sizes) <= max(300, max(sizes))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("failure", [503, "reset"])
def test_transient_failures_are_retried_and_batches_arrive_once(s3, failure):
    seq = Pipeline(ParquetSource(s3.uri("data/rows"), columns="id"), batch_size=16)
    s3.clear()
    s3.fail(5, failure, path="/data/rows/part-1.parquet")  # more than pyarrow's 3 tries
    assert _ids(list(seq)) == list(range(ROWS))
    failed = [r for r in s3.log if r.status in (0, 500, 503)]
    assert len(failed) == 5


def test_missing_objects_and_buckets_name_the_uri_without_secrets(s3):
    with pytest.raises(FileNotFoundError, match=r"s3://data/rows/nope\.parquet"):
        ParquetSource(s3.uri("data/rows/nope.parquet"))
    with pytest.raises(FileNotFoundError, match=r"s3://no-such-bucket/rows"):
        ParquetSource(s3.uri("no-such-bucket/rows"))
    src = ParquetSource(s3.uri("data/rows"), columns="id")
    with s3.missing("data/rows/part-1.parquet"):  # deleted after listing
        with pytest.raises(FileNotFoundError, match=r"s3://data/rows/part-1\.parquet") as info:
            src[100]
        assert "testing-secret" not in str(info.value)


def test_denied_access_names_the_uri(s3):
    src = ParquetSource(s3.uri("data/rows"), columns="id", cache_bytes=1)
    # Denied for good, as S3 does: the AWS SDK retries a 403 whose connection closed
    # early as a network error, so a few injected ones could all be used up by retries.
    s3.fail(100, 403, path="/data/rows/part-0.parquet")
    try:
        with pytest.raises(PermissionError, match=r"access denied to s3://data/rows/part-0"):
            src[[1]]
    finally:
        s3.clear_failures()


def test_uri_sources_round_trip_configs_and_pickle_without_credentials(s3):
    seq = Pipeline(ParquetSource(s3.uri("data/rows"), columns="id"), batch_size=32)
    loaded = Pipeline.from_json(seq.to_json())
    assert loaded[3].tolist() == list(range(96, 128))
    blob = pickle.dumps(seq)
    assert b"testing-secret" not in blob and b"AWS" not in blob


def test_filesystem_objects_read_but_refuse_configs(s3):
    src = ParquetSource("data/rows", columns="id", filesystem=s3.filesystem())
    assert src[[5, 70]].tolist() == [5, 70]
    assert pickle.loads(pickle.dumps(src))[[70]].tolist() == [70]
    with pytest.raises(ValueError, match=r"S3FileSystem object cannot be saved.*URI"):
        Pipeline(src).get_config()
    with pytest.raises(ValueError, match="either a URI or filesystem="):
        ParquetSource(s3.uri("data/rows"), filesystem=s3.filesystem())
    with pytest.raises(TypeError, match=r"pyarrow\.fs\.FileSystem"):
        ParquetSource("data/rows", filesystem="s3")


def test_bad_uris_and_cache_dirs_name_the_value(tmp_path):
    with pytest.raises(ValueError, match=r"unknown URI scheme 'ftp' in 'ftp://host/x'"):
        ParquetSource("ftp://host/x")
    with pytest.raises(ValueError, match=r"malformed URI 's3://b/k\?bogus=1'"):
        ParquetSource("s3://b/k?bogus=1")
    with pytest.raises(ValueError, match=r"malformed URI 's3://'.*no bucket"):
        ParquetSource("s3://")
    with pytest.raises(ValueError, match=r"malformed URI 's3://\*\*\*@b/k\?bogus=1'"):
        ParquetSource("s3://AKID:hush@b/k?bogus=1")  # credentials never printed
    pq.write_table(pa.table({"a": [1]}), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match=r"cache_dir '/proc/seqpipe-cache' is not a writable"):
        ParquetSource(tmp_path / "a.parquet", cache_dir="/proc/seqpipe-cache")


@pytest.mark.timeout(30)
def test_the_multi_worker_example_reads_its_shards_from_a_uri(s3):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "multi_worker.py")
    spec = importlib.util.spec_from_file_location("multi_worker_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    direct = f"{s3.moto_host}:{s3.moto_port}"  # uploads bypass the (read-only) proxy
    example.upload(f"s3://data/example/?endpoint_override={direct}&scheme=http")
    uri = s3.uri("data/example/")
    x = example.make_data()[0]
    seq = example.make_pipeline(uri)
    s3.clear()
    rows = [seq.shard(2, k) for k in range(2)]
    got = [np.concatenate([b[0] for b in shard]) for shard in rows]
    weights = [np.concatenate([b[2] for b in shard]) for shard in rows]
    real = np.concatenate([g[w > 0] for g, w in zip(got, weights, strict=True)])
    np.testing.assert_array_equal(np.sort(real, axis=0), np.sort(x, axis=0))
    assert len({(r.path, r.range) for r in s3.gets()}) == 2 * 8  # x and y chunks of 8 groups


@pytest.mark.timeout(60)
def test_an_image_folder_uri_lists_classes_and_feeds_two_workers_once(s3, tmp_path):
    images, labels, names = ImageFiles.from_directory(
        s3.uri("data/images/"), output_shape=(4, 4), cache_dir=tmp_path
    )
    assert names == CLASSES and labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert images.paths[0] == s3.uri("data/images/cat/00.png")
    expected = [10 * k + i for k, n in enumerate(PER_CLASS) for i in range(n)]
    seq = Pipeline((images, labels), batch_size=2, shuffle=True, seed=5)
    s3.clear()
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=2)
        batches = list(enqueuer.iter_epoch())
        first = _fetched(s3)
        s3.clear()
        again = list(enqueuer.iter_epoch())
    got = sorted(int(x[j, 0, 0, 0]) for x, _ in batches for j in range(len(x)))
    assert got == expected and len(again) == len(batches)
    assert len(first) == 9 and set(first.values()) == {1}  # each file fetched once
    assert s3.gets() == []  # the second epoch reads the disk cache
    loaded = Pipeline.from_json(seq.to_json(external_sources=True), sources={"1": labels})
    assert loaded[0][0].shape == (2, 4, 4, 3)


def test_image_files_on_a_filesystem_object_and_missing_keys(s3):
    fs = s3.filesystem()
    images, _, names = ImageFiles.from_directory("data/images", filesystem=fs)
    assert names == CLASSES and images[8][0, 0, 0] == 21
    with pytest.raises(ValueError, match="S3FileSystem object cannot be saved"):
        images.get_config()
    with pytest.raises(FileNotFoundError, match=r"s3://data/images/cat/99\.png"):
        ImageFiles([s3.uri("data/images/cat/00.png"), s3.uri("data/images/cat/99.png")])
    with pytest.raises(ValueError, match="one filesystem"):
        ImageFiles([s3.uri("data/images/cat/00.png"), "s3://data/images/cat/01.png"])
