"""write_webdataset: shards written in parallel, read back by WebDatasetSource and by the
webdataset library, resumed after a kill, locally and in the local S3 server."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from seqpipe.pipeline import Pipeline, write_webdataset
from seqpipe.sources import WebDatasetSource
from seqpipe.transforms import Lambda
from tests._layout import ROOT

from ..sources._shards import reference
from ._cache_child import N, expected, make_pipeline

pytest.importorskip("webdataset")
# Every test here starts a server or worker processes (joblib's, the enqueuer's).
pytestmark = pytest.mark.timeout(180)


def brighten(batch):
    """A deterministic, importable transform: written into the shards."""
    return batch[0] + 1, batch[1]


def _images(n):
    ids = np.arange(n)
    return np.broadcast_to(ids[:, None, None, None], (n, 5, 4, 3)).astype(np.uint8)


def test_shards_hold_the_deterministic_part_and_read_back_exactly(tmp_path):
    n = 23
    seq = Pipeline((_images(n), np.arange(n) % 5), batch_size=4, shuffle=True, seed=0) | Lambda(
        brighten
    )
    pattern = str(tmp_path / "out" / "shard-{:03d}.tar")
    out = write_webdataset(
        seq, pattern, samples_per_shard=10, encode={0: "png", 1: "cls"}, n_jobs=2
    )
    assert out["shards"] == [pattern.format(k) for k in range(3)] and out["written"] == [0, 1, 2]
    assert out["decode"] == {"0.png": "image", "1.cls": "int"}
    source = WebDatasetSource(out["shards"], decode=out["decode"])
    batch = source[:]
    np.testing.assert_array_equal(batch["0.png"], _images(n) + 1)  # PNG: lossless
    assert batch["1.cls"].tolist() == (np.arange(n) % 5).tolist()
    assert source.chunks.tolist() == [0, 10, 20]
    samples = reference(out["shards"])  # the webdataset library agrees, metadata skipped
    assert [s["__key__"] for s in samples] == [f"{i:02d}" for i in range(n)]
    assert [s["1.cls"] for s in samples] == [str(i % 5).encode() for i in range(n)]
    assert not [f for f in os.listdir(tmp_path / "out") if f.startswith(".partial")]


def test_dict_batches_default_to_npy_and_bad_arguments_are_named(tmp_path):
    seq = Pipeline({"x": np.arange(6.0).reshape(3, 2), "y": np.arange(3)}, batch_size=2)
    out = write_webdataset(seq, str(tmp_path / "d-{}.tar"), 2, n_jobs=1)
    assert out["decode"] == {"x.npy": "array", "y.npy": "array"}
    back = WebDatasetSource(out["shards"], decode=out["decode"])[:]
    np.testing.assert_array_equal(back["x.npy"], np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match=r"pattern must name shard k with a format field"):
        write_webdataset(seq, str(tmp_path / "fixed.tar"), 2)
    with pytest.raises(ValueError, match=r"encode: \{'x': 'webp'\} names no batch element"):
        write_webdataset(seq, str(tmp_path / "e-{}.tar"), 2, encode={"x": "webp"})
    with pytest.raises(ValueError, match=r"sample 0, member \.x\.cls: 'cls' stores one integer"):
        write_webdataset(seq, str(tmp_path / "c-{}.tar"), 2, encode={"x": "cls"}, n_jobs=1)
    with pytest.raises(TypeError, match="write_webdataset caches a Pipeline"):
        write_webdataset(np.arange(3), str(tmp_path / "t-{}.tar"), 2)


def test_missing_shards_are_written_again_and_foreign_ones_refused(tmp_path):
    seq = Pipeline((expected()[0], expected()[1]), batch_size=8)
    pattern = str(tmp_path / "s-{:02d}.tar")
    first = write_webdataset(seq, pattern, 8, n_jobs=1)
    kept = os.stat(first["shards"][0]).st_mtime_ns
    os.remove(first["shards"][1])
    os.remove(first["shards"][3])
    again = write_webdataset(seq, pattern, 8, n_jobs=1)
    assert again["written"] == [1, 3] and os.stat(first["shards"][0]).st_mtime_ns == kept
    assert WebDatasetSource(again["shards"], decode=again["decode"])[:]["1.npy"].tolist() == list(
        range(N)
    )
    other = Pipeline((expected()[0] + 1, expected()[1]), batch_size=8)
    with pytest.raises(ValueError, match=r"s-00\.tar exists but was not written by this pipeline"):
        write_webdataset(other, pattern, 8, n_jobs=1)
    with pytest.raises(ValueError, match=r"s-00\.tar exists.*samples_per_shard=4"):
        write_webdataset(seq, pattern, 4, n_jobs=1)


@pytest.mark.timeout(120)
def test_a_killed_write_resumes_with_the_missing_shards(tmp_path):
    pattern = str(tmp_path / "k-{:02d}.tar")
    code = (
        "from tests.pipeline._cache_child import make_pipeline; "
        "from seqpipe.pipeline import write_webdataset; "
        f"write_webdataset(make_pipeline(None, 0.4), {pattern!r}, 4, n_jobs=1)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.monotonic() + 60
    while len([f for f in os.listdir(tmp_path) if f.endswith(".tar")]) < 2:
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = sorted(f for f in os.listdir(tmp_path) if f.endswith(".tar"))
    assert 2 <= len(done) < N // 4  # killed part-way; no partial shard under a final name
    out = write_webdataset(make_pipeline(), pattern, 4, n_jobs=1)
    assert len(out["written"]) == N // 4 - len(done)
    back = WebDatasetSource(out["shards"], decode=out["decode"])[:]
    np.testing.assert_array_equal(back["0.npy"], expected()[0])


@pytest.mark.timeout(120)
def test_shards_go_to_a_bucket_one_upload_each_and_resume_there(tmp_path):
    pytest.importorskip("moto.server")
    from ..sources._s3_server import S3Server

    seq = Pipeline((_images(30), np.arange(30)), batch_size=4)
    with S3Server() as s3:
        s3.filesystem().create_dir("out")
        pattern = s3.uri("out/cache/shard-{:04d}.tar")
        out = write_webdataset(seq, pattern, 8, encode={1: "cls"}, n_jobs=2)
        # pyarrow uploads each shard as a multipart upload of one part: the object
        # appears when the upload is completed, whole.
        puts = sorted(r.path.split("?")[0] for r in s3.log if r.method == "PUT")
        assert puts == [f"/out/cache/shard-{k:04d}.tar" for k in range(4)]
        completed = [r for r in s3.log if r.method == "POST" and "uploadId=" in r.path]
        assert len(completed) == 4 and all(r.status == 200 for r in completed)
        source = WebDatasetSource(s3.uri("out/cache/shard-*.tar"), decode=out["decode"])
        np.testing.assert_array_equal(source[:]["0.npy"], _images(30))
        s3.filesystem().delete_file("out/cache/shard-0002.tar")
        s3.clear()
        again = write_webdataset(seq, pattern, 8, encode={1: "cls"}, n_jobs=1)
        assert again["written"] == [2]
        puts = [r.path.split("?")[0] for r in s3.log if r.method == "PUT"]
        assert puts == ["/out/cache/shard-0002.tar"]
