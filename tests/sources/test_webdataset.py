"""WebDatasetSource against the ``webdataset`` library's own reader on the same shards."""

import io
import os
import tarfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.pipeline.window_order import WindowOrder
from seqpipe.sources import WebDatasetSource
from seqpipe.sources._decode import decode_image

from ._shards import expected_json, jpeg, reference, write_shards

pytest.importorskip("webdataset")

PER_SHARD = [6, 4, 7]
N = sum(PER_SHARD)
DECODE = {"jpg": "image", "cls": "int", "json": "json", "npy": "array"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("shards"))
    return directory, write_shards(directory, PER_SHARD)


def _add(archive, name, data=b"", kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_same_keys_and_bytes_as_webdatasets_reader(shards):
    directory, paths = shards
    source = WebDatasetSource(os.path.join(directory, "shard-{000..002}.tar"))
    expected = reference(paths)
    assert len(source) == N == len(expected) and source.files == paths
    assert source.keys.tolist() == [s["__key__"] for s in expected]
    assert sorted(source.fields) == ["cls", "jpg", "json", "npy"]  # the first sample's
    batch = source[:]
    for ext in source.fields:
        assert batch[ext].tolist() == [s[ext] for s in expected], ext
    assert source.chunks.tolist() == [0, 6, 10] and source.chunks.dtype == np.int64


def test_webdataset_naming_rules_are_followed(tmp_path):
    # Multi-dot names, upper-case extensions, names without a dot, metadata files,
    # directories, and a key that comes back after another one: a new sample.
    path = str(tmp_path / "odd.tar")
    with tarfile.open(path, "w") as archive:
        _add(archive, "__meta__", b"skipped")
        _add(archive, "a/x.seg.PNG", b"1")
        _add(archive, "a/x.txt", b"2")
        _add(archive, "a", kind=tarfile.DIRTYPE)
        _add(archive, "README", b"no dot")
        _add(archive, "a/y.txt", b"3")
        _add(archive, "a/x.txt", b"4")
    expected = reference([path])
    source = WebDatasetSource(path, decode={"txt": "str"}, on_error="skip")
    assert source.keys.tolist() == [s["__key__"] for s in expected] == ["a/x", "a/y", "a/x"]
    assert expected[0]["seg.png"] == b"1"
    assert source[:]["txt"].tolist() == ["2", "3", "4"]
    with pytest.raises(ValueError, match=r"sample 'k' has two members with extension 'txt'"):
        with tarfile.open(tmp_path / "dup.tar", "w") as archive:
            _add(archive, "k.txt", b"1")
            _add(archive, "k.TXT", b"2")
        WebDatasetSource(tmp_path / "dup.tar")


def test_members_decode_like_image_files_and_webdataset_writes_them(shards):
    _, paths = shards
    source = WebDatasetSource(paths, decode=DECODE, output_shape=(12, 16))
    batch = source[[9, 2, 9]]
    assert batch["jpg"].shape == (3, 12, 16, 3) and batch["jpg"].dtype == np.uint8
    np.testing.assert_array_equal(batch["jpg"][1], decode_image(jpeg(2), "x", (12, 16)))
    assert batch["cls"].tolist() == [9 % 7, 2, 9 % 7] and batch["cls"].dtype == np.int64
    assert batch["json"].tolist() == [expected_json(9), expected_json(2), expected_json(9)]
    np.testing.assert_array_equal(batch["npy"][1], np.arange(4, dtype=np.float32) + 2)
    one = WebDatasetSource(paths, decode={"cls": "int"})
    assert one[3] == 3 and one[[-1]].tolist() == [(N - 1) % 7]  # one field: arrays


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(-N, N - 1), max_size=25))
def test_random_reads_give_the_reference_samples(shards, ids):
    _, paths = shards
    expected = reference(paths)
    source = WebDatasetSource(paths, decode={"json": "bytes", "jpg": "bytes"})
    batch = source[ids]
    assert batch["json"].tolist() == [expected[i]["json"] for i in ids]
    assert batch["jpg"].tolist() == [expected[i]["jpg"] for i in ids]


def test_missing_and_undecodable_members_raise_or_become_weight_zero_rows(tmp_path):
    def broken(i):
        sample = {"__key__": f"s{i}", "jpg": jpeg(i), "cls": i}
        if i == 2:
            del sample["cls"]
        if i == 4:
            sample["jpg"] = b"not a jpeg"
        return sample

    paths = write_shards(str(tmp_path), [3, 3], make=broken)
    strict = WebDatasetSource(paths, decode={"jpg": "image", "cls": "int"})
    assert strict.incomplete.tolist() == [2]
    assert strict[[0, 1]]["cls"].tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"shard-000\.tar, sample 's2' has no \.cls member.*skip"):
        strict[2]
    with pytest.raises(ValueError, match=r"shard-001\.tar, sample 's4', member \.jpg"):
        strict[[3, 4]]
    lenient = WebDatasetSource(
        paths, decode={"jpg": "image", "cls": "int"}, output_shape=(8, 8), on_error="skip"
    )
    with pytest.warns(UserWarning) as caught:
        batch = lenient[:]
    assert [str(w.message).split(", sample ")[1][:4] for w in caught] == ["'s2'", "'s4'"]
    assert all(str(w.message).startswith("skipped (weight 0): ") for w in caught)
    assert batch["sample_weight"].tolist() == [1, 1, 0, 1, 0, 1]
    assert batch["cls"].tolist() == [0, 1, 0, 3, 0, 5]  # padding rows hold placeholders
    assert not batch["jpg"][[2, 4]].any() and batch["jpg"].shape == (6, 8, 8, 3)
    assert sorted(lenient.skipped) == [2, 4] and "not" in lenient.skipped[4]
    # The tally travels with the batches, through a sharded pipeline too.
    shard = Pipeline(lenient, batch_size=2).shard(2, 1)
    weights = np.concatenate([shard[i]["sample_weight"] for i in range(len(shard))])
    assert weights.tolist() == [0, 1, 1]  # shard 1 of each step: samples 2, 3 and 5
    unsized = WebDatasetSource(paths, decode={"jpg": "image"}, on_error="skip")
    with (
        pytest.raises(ValueError, match=r"no other sample of its batch.*output_shape"),
        pytest.warns(UserWarning, match="sample 's4'"),
    ):
        unsized[4]


def test_bad_shards_and_arguments_name_the_shard_and_the_fix(shards, tmp_path):
    _, paths = shards
    with open(paths[1], "rb") as file:
        data = file.read()
    with tarfile.open(paths[1]) as archive:
        members = archive.getmembers()
    cut = tmp_path / "cut.tar"
    image = next(m for m in members[4:] if m.name.endswith(".jpg"))
    cut.write_bytes(data[: image.offset_data + 10])  # inside a JPEG member
    with pytest.raises(ValueError, match=r"cut\.tar: member '.*' is truncated.*re-write it"):
        WebDatasetSource(cut)
    damaged = tmp_path / "damaged.tar"
    end = members[-1].offset
    damaged.write_bytes(data[:end] + b"garbage" * 100)
    with pytest.raises(ValueError, match=r"damaged\.tar: damaged or truncated tar header"):
        WebDatasetSource(damaged)
    (tmp_path / "text.tar").write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"text\.tar: cannot read it as a tar file.*re-write"):
        WebDatasetSource(tmp_path / "text.tar")
    with pytest.raises(FileNotFoundError, match=r"no tar shard files match '.*train-\*\.tar'"):
        WebDatasetSource(str(tmp_path / "train-*.tar"))
    with pytest.raises(ValueError, match=r"extensions \['jpeg'\] that no member.*'jpg'"):
        WebDatasetSource(paths, decode={"jpeg": "image"})
    with pytest.raises(ValueError, match=r"unknown decoders \{'jpg': 'pil'\}"):
        WebDatasetSource(paths, decode={"jpg": "pil"})
    with pytest.raises(ValueError, match=r"on_error must be 'raise' or 'skip'"):
        WebDatasetSource(paths, on_error="ignore")


def test_indexes_are_kept_beside_shards_or_in_cache_dir(tmp_path):
    paths = write_shards(str(tmp_path / "data"), [3, 2])
    WebDatasetSource(paths)
    assert all(os.path.exists(p + ".seqpipe-index") for p in paths)
    stamp = os.stat(paths[1] + ".seqpipe-index").st_mtime_ns
    assert len(WebDatasetSource(str(tmp_path / "data"))) == 5  # the directory's .tar only
    assert os.stat(paths[1] + ".seqpipe-index").st_mtime_ns == stamp
    other = write_shards(str(tmp_path / "other"), [2])
    assert WebDatasetSource(other, cache_dir=tmp_path / "cache").keys.tolist() == [
        "images/00000",
        "images/00001",
    ]
    assert not os.path.exists(other[0] + ".seqpipe-index")


@pytest.mark.timeout(120)
def test_two_workers_deliver_every_sample_once_and_configs_round_trip(shards):
    _, paths = shards
    source = WebDatasetSource(paths, decode={"cls": "int", "json": "json"})
    seq = Pipeline(source, batch_size=4, shuffle=True, seed=3)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=3)
        ids = [j["id"] for b in enqueuer.iter_epoch() for j in b["json"]]
    assert sorted(ids) == list(range(N))
    loaded = Pipeline.from_json(seq.to_json())
    assert loaded.get_batch(2, 1)["json"].tolist() == seq.get_batch(2, 1)["json"].tolist()


def test_the_window_order_over_a_sources_chunks_reads_every_sample_once(shards):
    _, paths = shards
    source = WebDatasetSource(paths, decode={"json": "json"})
    order = WindowOrder(source.chunks, len(source), window=2, seed=0, epoch=0)
    ids = [j["id"] for lo in range(0, N, 5) for j in source[order[lo : lo + 5]]]
    assert sorted(ids) == list(range(N))


@pytest.mark.timeout(120)
def test_a_worker_reading_shards_imports_neither_tensorflow_nor_pyarrow(shards, tmp_path):
    from ._worker_imports import worker_reads

    _, paths = shards
    source = WebDatasetSource(paths, decode=DECODE, output_shape=(8, 8))
    heavy = ["tensorflow", "pyarrow", "scipy", "skimage", "PIL", "h5py", "webdataset"]
    seq = Pipeline(source, batch_size=3)
    assert worker_reads(seq, "seq[0]['jpg'].shape", heavy, tmp_path) == "(3, 8, 8, 3)"
