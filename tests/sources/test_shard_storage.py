"""TFRecord files and WebDataset shards in a bucket: moto's S3 on 127.0.0.1 behind the
logging, failure-injecting proxy of ``_s3_server.py``. GETs are counted by the proxy."""

import collections
import os
import pickle
import time

import numpy as np
import pyarrow.fs as pafs
import pytest

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.pipeline.window_order import WindowOrder
from seqpipe.sources import TFRecordSource, WebDatasetSource
from seqpipe.sources._retries import BACKOFF_S, RETRIES

from ._s3_server import S3Server
from ._shards import reference, write_shards

pytest.importorskip("moto.server")
# Every test here starts a server or worker processes (joblib's, the enqueuer's).
pytestmark = pytest.mark.timeout(180)
tf = pytest.importorskip("tensorflow")

PER_SHARD = [5, 8, 6, 7]
N = sum(PER_SHARD)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    from .test_tfrecord import write_files

    local = tmp_path_factory.mktemp("local")
    shards = write_shards(str(local / "tar"), PER_SHARD)
    records = write_files(str(local / "tfrecord"), per_file=PER_SHARD)
    with S3Server() as server:
        fs = server.filesystem()
        fs.create_dir("data")
        for path in shards + records:
            kind = os.path.basename(os.path.dirname(path))
            with (
                open(path, "rb") as file,
                fs.open_output_stream(f"data/{kind}/{os.path.basename(path)}") as out,
            ):
                out.write(file.read())
        server.local = {"tar": shards, "tfrecord": records}
        yield server


def _gets_per_file(server):
    return collections.Counter(r.path for r in server.gets())


def test_remote_shards_read_the_same_samples_as_local_ones(s3):
    tars = WebDatasetSource(s3.uri("data/tar/shard-*.tar"), decode={"json": "bytes"})
    expected = reference(s3.local["tar"])
    assert tars.keys.tolist() == [s["__key__"] for s in expected]
    assert tars[::-1].tolist() == [s["json"] for s in expected][::-1]
    assert tars.files[0] == "s3://data/tar/shard-000.tar"
    records = TFRecordSource(s3.uri("data/tfrecord/"), features={"label": "int64"})
    local = TFRecordSource(s3.local["tfrecord"], features={"label": "int64"})
    assert records[:].tolist() == local[:].tolist() and len(records) == N
    assert records.chunks.tolist() == local.chunks.tolist() == [0, 5, 13, 19]


def test_one_get_per_contiguous_run_and_per_shard_read_whole(s3):
    source = WebDatasetSource(s3.uri("data/tar/"), decode={"json": "json"})
    s3.clear()
    source[6:12]  # one run inside shard 1
    assert _gets_per_file(s3) == {"/data/tar/shard-001.tar": 1}
    s3.clear()
    source[[0, 2, 4]]  # three samples of shard 0 a few hundred bytes apart: one run
    assert len(s3.gets()) == 1
    # With chunk_cache_bytes a shard is fetched whole by the first read touching it:
    # an epoch in the window order reads every shard once, whatever the batches.
    sizes = [os.path.getsize(p) for p in s3.local["tar"]]
    whole = WebDatasetSource(
        s3.uri("data/tar/"), decode={"json": "json"}, chunk_cache_bytes=2 * max(sizes)
    )
    whole = pickle.loads(pickle.dumps(whole))  # as a worker gets it: nothing held yet
    for epoch in range(2):
        order = WindowOrder(whole.chunks, N, window=2, seed=0, epoch=epoch)
        s3.clear()
        ids = [j["id"] for lo in range(0, N, 4) for j in whole[order[lo : lo + 4]]]
        assert sorted(ids) == list(range(N))
        counts = _gets_per_file(s3)
        assert max(counts.values()) == 1  # never twice in an epoch
        if epoch == 0:
            assert len(counts) == len(PER_SHARD)
            size_of = {f"/data/tar/shard-{k:03d}.tar": size for k, size in enumerate(sizes)}
            assert all(r.range == f"bytes=0-{size_of[r.path] - 1}" for r in s3.gets())


def test_indexes_and_records_kept_in_cache_dir_spare_requests(s3, tmp_path):
    s3.clear()
    TFRecordSource(s3.uri("data/tfrecord/"), cache_dir=tmp_path)
    scanned = _gets_per_file(s3)
    assert set(scanned) == {f"/data/tfrecord/part-{k:02d}.tfrecord" for k in range(4)}
    s3.clear()
    again = TFRecordSource(
        s3.uri("data/tfrecord/"), features={"label": "int64"}, cache_dir=tmp_path
    )
    # No scan: one GET, of record 0 alone, which the source parses to check the features.
    (get,) = s3.gets()
    assert get.path == "/data/tfrecord/part-00.tfrecord"
    assert get.nbytes == again._span_lengths[0] < os.path.getsize(s3.local["tfrecord"][0])
    assert again[N - 1] == (N - 1) * 1000 - 7
    s3.clear()
    third = TFRecordSource(
        s3.uri("data/tfrecord/"), features={"label": "int64"}, cache_dir=tmp_path
    )
    assert third[[0, N - 1]].tolist() == [-7, (N - 1) * 1000 - 7]
    assert s3.gets() == []  # the records read before are in cache_dir


@pytest.mark.timeout(120)
@pytest.mark.parametrize("failure", [503, "reset", "cut"])
def test_transient_failures_are_retried_and_every_sample_arrives_once(s3, failure):
    source = TFRecordSource(s3.uri("data/tfrecord/"), features={"label": "int64"})
    seq = Pipeline(source, batch_size=5)
    s3.clear()
    s3.fail(4, failure, path="/data/tfrecord/part-02.tfrecord")
    labels = [int(x) for batch in seq for x in batch]
    assert labels == [i * 1000 - 7 for i in range(N)]
    assert len([r for r in s3.log if r.status in (0, 503)]) == 4


@pytest.mark.timeout(120)
def test_a_response_slower_than_the_timeout_is_retried(s3):
    fs = pafs.S3FileSystem(
        endpoint_override=s3.endpoint, scheme="http", request_timeout=0.5, connect_timeout=0.5
    )
    source = WebDatasetSource("data/tar", decode={"json": "json"}, filesystem=fs)
    s3.clear()
    s3.fail(1, "slow:2", path="/data/tar/shard-002.tar")
    start = time.monotonic()
    ids = [j["id"] for j in source[:]]
    assert ids == list(range(N))
    assert len([r for r in s3.log if r.status == 0]) == 1
    assert time.monotonic() - start < 10


@pytest.mark.timeout(120)
def test_retries_are_bounded_with_backoff(s3):
    # The SDK's own retries cut to the minimum (they multiply ours): our attempts each
    # make a GET or a HEAD (reopening the object), which pyarrow may repeat a few times.
    fs = pafs.S3FileSystem(
        endpoint_override=s3.endpoint,
        scheme="http",
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )
    source = TFRecordSource("data/tfrecord", filesystem=fs)
    s3.clear()
    s3.fail(1000, 503, path="/data/tfrecord/part-01.tfrecord")
    start = time.monotonic()
    try:
        with pytest.raises(OSError, match=r"reading data/tfrecord/part-01\.tfrecord .*failed"):
            source[7]
    finally:
        s3.clear_failures()
    failed = len([r for r in s3.log if r.status == 503])
    # Each attempt reopens the object (a failed handle is never reused), and pyarrow's
    # open repeats its HEAD on a 503 (6 times here, whatever the SDK's max_attempts):
    # bounded, not multiplied by further layers.
    assert RETRIES + 1 <= failed <= 8 * (RETRIES + 1)
    assert time.monotonic() - start >= BACKOFF_S * (2**RETRIES - 1)  # the pauses between
    assert source[7] == TFRecordSource(s3.local["tfrecord"])[7]  # and then it recovers


def test_denied_and_missing_objects_name_the_uri_without_credentials(s3):
    def secret(uri):  # credentials in the URI's user info, as pyarrow reads them
        return uri.replace("s3://", "s3://AKIDX:hush-hush@")

    source = WebDatasetSource(secret(s3.uri("data/tar/")), decode={"json": "json"})
    s3.fail(100, 403, path="/data/tar/shard-003.tar")
    try:
        with pytest.raises(
            PermissionError, match=r"access denied to s3://\*\*\*@data/tar/shard-003"
        ) as info:
            source[N - 1]
    finally:
        s3.clear_failures()
    assert "hush" not in str(info.value) and "hush" not in repr(source)
    assert "check the credentials" in str(info.value)  # the usual fix
    with s3.missing("data/tar/shard-000.tar"):  # deleted after listing
        with pytest.raises(FileNotFoundError, match=r"s3://\*\*\*@data/tar/shard-000\.tar") as info:
            source[0]
        assert "hush" not in str(info.value)
    with pytest.raises(
        FileNotFoundError, match=r"no tar shard files match 's3://\*\*\*@data/tar/x-\*"
    ):
        WebDatasetSource(secret(s3.uri("data/tar/x-*.tar")))
    with pytest.raises(ValueError, match=r"malformed URI 's3://\?.*no bucket"):
        TFRecordSource("s3://?endpoint_override=" + s3.endpoint + "&scheme=http")
    with pytest.raises(ValueError, match=r"wildcard in its bucket name"):
        TFRecordSource(s3.uri("dat*/x"))


@pytest.mark.timeout(120)
def test_two_workers_read_remote_records_once_per_epoch(s3):
    source = TFRecordSource(s3.uri("data/tfrecord/"), features={"label": "int64"})
    seq = Pipeline(source, batch_size=4, shuffle=True, seed=2)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=3)
        epochs = [sorted(int(x) for b in enqueuer.iter_epoch() for x in b) for _ in range(2)]
    assert epochs == [[i * 1000 - 7 for i in range(N)]] * 2
    assert np.all(source.chunks == [0, 5, 13, 19])


@pytest.mark.timeout(120)
def test_two_worker_processes_fetch_each_shard_once_per_host_with_cache_dir(s3, tmp_path):
    # Every worker touches every chunk of the windows it serves; with ``cache_dir`` the
    # first to miss a whole shard fetches it under the entry's file lock and the other
    # reads it from the host's disk: one GET per shard for the host, however many
    # workers, epochs and windows.
    sizes = [os.path.getsize(p) for p in s3.local["tar"]]
    s3.clear()
    source = WebDatasetSource(
        s3.uri("data/tar/"),
        decode={"json": "json"},
        cache_dir=tmp_path,
        chunk_cache_bytes=2 * max(sizes),
    )
    seq = Pipeline(source, batch_size=3, shuffle="window", window=2, seed=4)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=4)
        epochs = [[j["id"] for b in enqueuer.iter_epoch() for j in b] for _ in range(3)]
    assert [sorted(ids) for ids in epochs] == [list(range(N))] * 3
    assert epochs[0] != epochs[1]  # a new window order each epoch
    whole = {f"/data/tar/shard-{k:03d}.tar": f"bytes=0-{size - 1}" for k, size in enumerate(sizes)}
    assert sorted((r.path, r.range) for r in s3.gets()) == sorted(whole.items())
