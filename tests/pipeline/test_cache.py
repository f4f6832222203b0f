"""`Pipeline.cache` / `write_hdf5`: real HDF5 files, real joblib workers, real kills."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpipe.pipeline import Pipeline, Sequence, write_hdf5
from seqpipe.pipeline.cache import DONE, fingerprint, split_transforms
from seqpipe.sources import HDF5Matrix, ImageFiles
from seqpipe.transforms import Lambda, Normalize, ToCategorical, Transform

from ._cache_child import ROWS_PER_TASK, N, expected, logged_reads, make_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def as_dict(batch):
    """A tuple batch as a dict (importable, so it has a saveable config)."""
    return {"x": batch[0], "y": batch[1]}


def first_row(batch):
    """Not sample-wise: keeps one row of any batch."""
    return batch[:1]


class Jitter(Transform):
    """A random transform (called with its rng): the cache stops before it, and the
    cached pipeline must draw what the original draws."""

    random = True

    def __call__(self, batch, rng):
        return batch + rng.random(batch.shape)


def assert_same_batches(a, b, epochs=(0, 1)):
    assert len(a) == len(b)
    for epoch in epochs:
        for i in range(len(a)):
            got, want = b.get_batch(i, epoch), a.get_batch(i, epoch)
            if isinstance(want, dict):
                assert list(got) == list(want)
                got, want = list(got.values()), list(want.values())
            elif not isinstance(want, tuple):
                got, want = [got], [want]
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and g.shape == w.shape
                assert g.tobytes() == w.tobytes(), (epoch, i)


@st.composite
def pipelines(draw):
    n = draw(st.integers(1, 40))
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) - 7
    y = np.arange(n) % 4
    structure = draw(st.sampled_from(["single", "tuple", "dict", "lambda-dict"]))
    sources = {"single": x, "tuple": (x, y), "dict": {"x": x, "y": y}}.get(structure, (x, y))
    seq = Pipeline(
        sources,
        batch_size=draw(st.integers(1, 9)),
        shuffle=draw(st.sampled_from([False, True, "batch"])),
        seed=draw(st.integers(0, 2**16)),
        drop_remainder=draw(st.booleans()) and n >= 9,
    )
    on = None if structure == "single" else ("x" if structure == "dict" else 0)
    seq = seq | Normalize(on=on)
    if structure == "lambda-dict":
        seq = seq | Lambda(as_dict) | ToCategorical(4, on="y")
    shards = draw(st.integers(1, 3))
    if shards > 1 and n >= 3 and not seq.drop_remainder:
        seq = seq.shard(shards, draw(st.integers(0, shards - 1)))
    return seq, draw(st.one_of(st.none(), st.integers(1, n)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_cached_batches_equal_the_original(case):
    seq, rows_per_task = case
    with tempfile.TemporaryDirectory() as tmp:
        cached = seq.cache(os.path.join(tmp, "c.h5"), n_jobs=1, rows_per_task=rows_per_task)
        assert_same_batches(seq, cached)
        sources = cached.sources
        sources = [sources] if isinstance(sources, HDF5Matrix) else sources
        sources = list(sources.values()) if isinstance(sources, dict) else sources
        assert all(isinstance(m, HDF5Matrix) for m in sources)
        assert cached.transforms == () and cached.sharded == seq.sharded


@pytest.mark.timeout(90)
def test_parallel_write_with_joblib_workers(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 200)
    seq = Pipeline((images, labels), batch_size=32, shuffle=True, seed=5) | ToCategorical(10, on=1)
    path = tmp_path / "images.h5"
    cached = seq.cache(path, n_jobs=2, rows_per_task=16, verbose=True)
    assert_same_batches(seq, cached)
    assert "200/200" in capsys.readouterr().err  # the tqdm bar reached the end
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["0"][()], images)
        assert np.array_equal(f["1"][()], np.eye(10, dtype="float32")[labels])
        assert f["0"].chunks == (32, 16, 16, 3)  # one batch of rows per chunk
        assert f[DONE][()].all()
    assert sorted(os.listdir(tmp_path)) == ["images.h5", "images.h5.lock"]  # no .partial


def test_chunks_are_a_batch_of_rows_up_to_16_mb_and_blocks_about_8_mb(tmp_path):
    mib = 1 << 20
    rows = np.broadcast_to(np.arange(40, dtype=np.uint8)[:, None], (40, mib))  # 1 MiB each
    path = tmp_path / "big.h5"
    cached = Pipeline(rows, batch_size=32).cache(path, n_jobs=1)
    with h5py.File(path, "r") as f:
        assert f["0"].chunks == (16, mib)  # 16 MiB: fewer rows than a batch of 32
        assert f[DONE].shape == (5,)  # blocks of 8 rows (8 MiB): 5 in all
    assert np.array_equal(cached.sources[[0, 39]][:, :3], [[0, 0, 0], [39, 39, 39]])


def test_complete_cache_is_reused_without_reading_sources(tmp_path):
    log = str(tmp_path / "reads.log")
    path = tmp_path / "c.h5"
    first = make_pipeline(log).cache(path, n_jobs=1, rows_per_task=ROWS_PER_TASK)
    assert len(logged_reads(log)) == 1 + N // ROWS_PER_TASK  # a 1-sample probe, 10 blocks
    os.remove(log)
    again = make_pipeline(log).cache(path, n_jobs=1)
    assert logged_reads(log) == []
    assert_same_batches(first, again)
    assert_same_batches(make_pipeline(), again)


def test_image_folder_is_decoded_once(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(12):
        folder = tmp_path / "photos" / f"class_{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    images, labels, _ = ImageFiles.from_directory(tmp_path / "photos", (16, 16))
    seq = Pipeline((images, labels), batch_size=5, shuffle=True, seed=2)
    cached = seq.cache(tmp_path / "photos.h5", n_jobs=1)
    assert_same_batches(seq, cached)
    assert cached.sources[0].shape == (12, 16, 16, 3) and cached.sources[0].dtype == np.uint8


def test_random_transforms_stay_in_the_cached_pipeline(tmp_path):
    x = np.arange(12.0).reshape(6, 2)
    jitter, double = Jitter(), Lambda(np.square)
    seq = Pipeline(x, batch_size=4) | Normalize() | jitter | double
    assert split_transforms(seq) == ((seq.transforms[0],), (jitter, double))
    cached = seq.cache(tmp_path / "c.h5", n_jobs=1)
    assert cached.transforms == (jitter, double)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert np.array_equal(f["0"][()], (Pipeline(x, batch_size=6) | Normalize())[0])
    assert_same_batches(seq, cached)
    # What follows the first random transform is not fingerprinted: a lambda is fine.
    assert fingerprint(seq | Lambda(lambda b: b)) == fingerprint(seq)


def test_stale_cache_is_refused_naming_both_fingerprints(tmp_path):
    path = str(tmp_path / "c.h5")
    x = np.arange(10.0)
    Pipeline(x, batch_size=4).cache(path, n_jobs=1)
    changed = Pipeline(x + 1, batch_size=4)
    with h5py.File(path, "r") as f:
        old = f.attrs["seqpipe_fingerprint"]
    new = fingerprint(changed)
    with pytest.raises(ValueError) as info:
        changed.cache(path, n_jobs=1)
    assert old in str(info.value) and new in str(info.value) and path in str(info.value)
    with pytest.raises(ValueError, match="fingerprint"):
        (Pipeline(x, batch_size=4) | Normalize()).cache(path, n_jobs=1)
    # Settings that do not change the file reuse it.
    Pipeline(x, batch_size=3, shuffle=True).shard(2, 1).cache(path, n_jobs=1)


def test_foreign_and_incomplete_files_are_refused(tmp_path):
    seq = Pipeline(np.arange(5.0), batch_size=2)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        seq.cache(text, n_jobs=1)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["0"] = np.arange(5.0)
    with pytest.raises(ValueError, match="not a seqpipe cache"):
        seq.cache(foreign, n_jobs=1)
    moved = tmp_path / "moved.h5"
    seq.cache(moved, n_jobs=1)
    with h5py.File(moved, "r+") as f:
        f.attrs["seqpipe_complete"] = False
    with pytest.raises(ValueError, match="incomplete seqpipe cache"):
        seq.cache(moved, n_jobs=1)


def test_stale_partial_file_is_discarded(tmp_path):
    path = tmp_path / "c.h5"
    Pipeline(np.arange(6.0), batch_size=2).cache(path, n_jobs=1)
    os.replace(path, str(path) + ".partial")  # a partial file of another pipeline
    seq = Pipeline(np.arange(6.0) * 2, batch_size=2)
    with pytest.warns(UserWarning, match="another pipeline"):
        cached = seq.cache(path, n_jobs=1)
    assert_same_batches(seq, cached)


def test_bad_input_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    x = np.arange(6.0)
    with pytest.raises(ValueError, match=r"cannot fingerprint.*transform 0"):
        (Pipeline(x) | Lambda(lambda b: b)).cache(path)

    class Rows:  # array-like, but with no config to fingerprint
        def __len__(self):
            return 6

        def __getitem__(self, key):
            return x[key]

    with pytest.raises(ValueError, match=r"cannot fingerprint.*cannot save"):
        Pipeline(Rows()).cache(path)

    class Batches(Sequence):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x

    with pytest.raises(ValueError, match="batch-level Sequence"):
        Pipeline(Batches()).cache(path)
    with pytest.raises(TypeError, match="caches a Pipeline"):
        write_hdf5(x, path)
    with pytest.raises(ValueError, match="n_jobs"):
        Pipeline(x).cache(path, n_jobs=0)
    for bad in (0, "3"):
        with pytest.raises(ValueError, match="rows_per_task"):
            Pipeline(x).cache(path, rows_per_task=bad)
    with pytest.raises(TypeError, match="dtype <U"):
        Pipeline(np.array(list("abcdef"))).cache(path, n_jobs=1)
    with pytest.raises(ValueError, match="one row per sample"):
        (Pipeline(x.reshape(3, 2)) | Lambda(np.ravel)).cache(path, n_jobs=1)
    with pytest.raises(ValueError, match=r"samples 0:3.*fixed shape"):
        (Pipeline(x) | Lambda(first_row)).cache(path, n_jobs=1, rows_per_task=3)
    assert not os.path.exists(path)


def _child(path, log, delay):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline._cache_child", str(path), str(log), str(delay)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.timeout(90)
def test_killed_write_resumes_without_recomputing_done_blocks(tmp_path):
    path, log = tmp_path / "c.h5", tmp_path / "killed.log"
    child = _child(path, log, delay=0.2)
    deadline = time.monotonic() + 60
    while len(logged_reads(log)) < 5 and child.poll() is None:  # probe + 4 blocks
        assert time.monotonic() < deadline, "the child never got going"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    assert not path.exists()  # never complete under its final name
    with h5py.File(str(path) + ".partial", "r") as f:
        done = np.flatnonzero(f[DONE][()])
    num_blocks = N // ROWS_PER_TASK
    assert 0 < len(done) < num_blocks

    rerun_log = str(tmp_path / "rerun.log")
    cached = make_pipeline(rerun_log).cache(path, n_jobs=1, rows_per_task=1)
    todo = sorted(set(range(num_blocks)) - set(done))
    assert logged_reads(rerun_log) == [(b * 4, b * 4 + 4) for b in todo]  # no probe either
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["0"][()], expected()[0])  # every sample, old and new
        assert f["0"].chunks[0] == 8  # the resumed file kept its layout
    assert_same_batches(make_pipeline(), cached)
    assert not os.path.exists(str(path) + ".partial")


@pytest.mark.timeout(90)
def test_concurrent_writers_compute_once(tmp_path):
    path = tmp_path / "c.h5"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    children = [_child(path, log, delay=0.02) for log in logs]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
    reads = sorted(r for log in logs for r in logged_reads(str(log)))
    blocks = [(b, b + ROWS_PER_TASK) for b in range(0, N, ROWS_PER_TASK)]
    assert reads == sorted([(0, 1), *blocks])  # one probe and each block, once in all
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["0"][()], expected()[0])
