"""TFRecordSource against tf.data.TFRecordDataset + tf.io.parse_single_example on files
that TensorFlow wrote."""

import io
import os
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.sources import CorruptRecordError, ImageFiles, TFRecordSource

tf = pytest.importorskip("tensorflow")

PER_FILE = (7, 5, 9)  # three files
N = sum(PER_FILE)
FEATURES = {
    "label": "int64",
    "emb": ("float32", (2, 3)),
    "name": "str",
    "png": "png",
    "jpeg": "bytes",
}


def _png(i):
    rng = np.random.default_rng(i)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6 + i % 3, 5, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(i):
    image = np.zeros((40, 48, 3), np.uint8) + np.arange(48, dtype=np.uint8)[None, :, None] * 5
    return tf.io.encode_jpeg(image + i).numpy()


def _example(i):
    feature = tf.train.Feature
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "label": feature(int64_list=tf.train.Int64List(value=[i * 1000 - 7])),
                "emb": feature(float_list=tf.train.FloatList(value=np.arange(6) / (i + 1))),
                "name": feature(bytes_list=tf.train.BytesList(value=[f"sample-{i}".encode()])),
                "png": feature(bytes_list=tf.train.BytesList(value=[_png(i)])),
                "jpeg": feature(bytes_list=tf.train.BytesList(value=[_jpeg(i)])),
            }
        )
    )


def write_files(directory, per_file=PER_FILE, options=None, suffix=".tfrecord"):
    """TFRecord files written by TensorFlow; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths, i = [], 0
    for k, count in enumerate(per_file):
        path = os.path.join(directory, f"part-{k:02d}{suffix}")
        with tf.io.TFRecordWriter(path, options) as writer:
            for _ in range(count):
                writer.write(_example(i).SerializeToString())
                i += 1
        paths.append(path)
    return paths


def _reference(paths):
    """Every record as TensorFlow parses it: list of dicts of numpy values, and raw bytes."""
    spec = {
        "label": tf.io.FixedLenFeature([], tf.int64),
        "emb": tf.io.FixedLenFeature([2, 3], tf.float32),
        "name": tf.io.FixedLenFeature([], tf.string),
        "png": tf.io.FixedLenFeature([], tf.string),
        "jpeg": tf.io.FixedLenFeature([], tf.string),
    }
    raw = [r.numpy() for r in tf.data.TFRecordDataset(paths)]
    parsed = [{k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()} for r in raw]
    return raw, parsed


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tfrecords")
    paths = write_files(str(directory))
    return str(directory), paths, *_reference(paths)


def test_every_feature_matches_tensorflows_parse(files):
    directory, paths, raw, parsed = files
    source = TFRecordSource(os.path.join(directory, "part-*.tfrecord"), features=FEATURES)
    assert len(source) == N and source.files == paths
    assert source.chunks.tolist() == [0, 7, 12] and source.chunks.dtype == np.int64
    order = np.random.default_rng(0).permutation(N)
    without_png = {k: v for k, v in FEATURES.items() if k != "png"}  # pngs differ in size
    batch = TFRecordSource(paths, features=without_png)[order[:4]]
    for j, i in enumerate(order[:4]):
        assert batch["label"][j] == parsed[i]["label"] and batch["label"].dtype == np.int64
        np.testing.assert_array_equal(batch["emb"][j], parsed[i]["emb"])
        assert batch["emb"].dtype == np.float32 and batch["emb"].shape[1:] == (2, 3)
        assert batch["name"][j] == parsed[i]["name"].decode()
        assert batch["jpeg"][j] == parsed[i]["jpeg"]
    for i in range(N):
        sample = source[i]
        png = tf.io.decode_png(parsed[i]["png"], channels=3).numpy()
        np.testing.assert_array_equal(sample["png"], png)  # lossless: the same pixels
    raw_source = TFRecordSource(paths)  # no features: the records themselves
    assert raw_source[:].tolist() == raw and raw_source.fields == ["record"]


def test_jpegs_decode_like_image_files_and_close_to_tensorflow(files, tmp_path):
    _, paths, _, parsed = files
    source = TFRecordSource(paths, features={"jpeg": "jpeg"}, output_shape=(20, 24))
    images = source[[3, 11]]
    assert images.shape == (2, 20, 24, 3) and images.dtype == np.uint8
    (tmp_path / "3.jpg").write_bytes(parsed[3]["jpeg"])
    np.testing.assert_array_equal(images[0], ImageFiles([tmp_path / "3.jpg"], (20, 24))[0])
    full = TFRecordSource(paths, features={"jpeg": "jpeg"})[11]
    reference = tf.io.decode_jpeg(parsed[11]["jpeg"], dct_method="INTEGER_ACCURATE").numpy()
    assert np.abs(full.astype(int) - reference).mean() < 1.0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(-N, N - 1), max_size=30))
def test_index_arrays_with_duplicates_and_negatives_follow_tensorflow(files, ids):
    _, paths, _, parsed = files
    source = TFRecordSource(paths, features={"label": "int64"})
    assert source[ids].tolist() == [int(parsed[i]["label"]) for i in ids]


def test_the_index_is_kept_beside_the_file_or_in_cache_dir_and_rebuilt_when_stale(tmp_path):
    paths = write_files(str(tmp_path / "data"), per_file=(3, 4))
    index = paths[0] + ".seqpipe-index"
    source = TFRecordSource(str(tmp_path / "data"), features={"label": "int64"})
    assert os.path.exists(index) and len(source) == 7  # the index is not listed as data
    written = os.stat(index).st_mtime_ns
    assert TFRecordSource(paths, features={"label": "int64"})[6] == 6 * 1000 - 7
    assert os.stat(index).st_mtime_ns == written  # loaded, not rebuilt
    # The file changes (one record more): its size and mtime no longer match the index.
    write_files(str(tmp_path / "data"), per_file=(4,))
    assert len(TFRecordSource(paths[0], features={"label": "int64"})) == 4
    cache = tmp_path / "cache"
    other = write_files(str(tmp_path / "other"), per_file=(2,))
    assert TFRecordSource(other, cache_dir=cache)[1] == _example(1).SerializeToString()
    assert not os.path.exists(other[0] + ".seqpipe-index")
    assert [p.name for p in cache.iterdir() if p.is_file()]  # the index entry


def test_corrupt_and_truncated_records_name_the_file_and_the_record(tmp_path):
    (path,) = write_files(str(tmp_path), per_file=(4,))
    with open(path, "rb") as file:
        data = bytearray(file.read())
    source = TFRecordSource(path, features={"label": "int64"})
    spans = source._span_offsets
    data[int(spans[2]) + 20] ^= 0xFF  # a byte of record 2's data
    with open(path, "r+b") as file:
        file.write(bytes(data))
    assert source[[0, 1, 3]].tolist() == [-7, 993, 2993]  # the others still read
    with pytest.raises(CorruptRecordError, match=r"part-00\.tfrecord, record 2: .*CRC") as info:
        source[2]
    assert (info.value.path, info.value.record) == (path, 2)
    assert isinstance(info.value, ValueError)
    again = pickle.loads(pickle.dumps(info.value))  # as it crosses from a worker
    assert (again.path, again.record, str(again)) == (path, 2, str(info.value))
    cut = tmp_path / "cut" / "part.tfrecord"
    cut.parent.mkdir()
    cut.write_bytes(bytes(data[: int(spans[3]) + 30]))
    with pytest.raises(CorruptRecordError, match=r"part\.tfrecord, record 3: truncated.*re-write"):
        TFRecordSource(cut)


def test_compressed_files_are_refused_with_the_reason_and_the_fix(tmp_path):
    (gzipped,) = write_files(str(tmp_path), per_file=(2,), options="GZIP")
    with pytest.raises(
        ValueError, match=r"GZIP-compressed; .*cannot be read at random.*Decompress"
    ):
        TFRecordSource(gzipped)
    with pytest.raises(ValueError, match=r"compression='ZLIB': compressed TFRecord files"):
        TFRecordSource(gzipped, compression="ZLIB")
    (zlibbed,) = write_files(str(tmp_path / "z"), per_file=(2,), options="ZLIB")
    with pytest.raises(CorruptRecordError, match=r"record 0: the length's CRC fails.*compressed"):
        TFRecordSource(zlibbed)


def test_wrong_names_types_and_patterns_say_what_to_fix(files, tmp_path):
    _, paths, _, _ = files
    with pytest.raises(ValueError, match=r"record 0 has no feature 'lable'.*'label'.*fix the name"):
        TFRecordSource(paths, features={"lable": "int64"})
    with pytest.raises(ValueError, match=r"'label' is stored as int64_list.*declare it as 'int64'"):
        TFRecordSource(paths, features={"label": "float32"})
    with pytest.raises(
        ValueError, match=r"'emb' holds 6 values, 1 expected.*\('float32', \(6,\)\)"
    ):
        TFRecordSource(paths, features={"emb": "float32"})
    with pytest.raises(ValueError, match=r"feature 'x': expected one of .*Received: 'int32'"):
        TFRecordSource(paths, features={"x": "int32"})
    with pytest.raises(ValueError, match=r"not a tf\.train\.Example"):
        bogus = tmp_path / "bogus.tfrecord"
        with tf.io.TFRecordWriter(str(bogus)) as writer:
            writer.write(b"\xff\xff\xff")
        TFRecordSource(bogus, features={"label": "int64"})
    with pytest.raises(FileNotFoundError, match=r"no TFRecord files match '.*nothing-\*'"):
        TFRecordSource(str(tmp_path / "nothing-*"))
    with pytest.raises(FileNotFoundError, match=r"TFRecord path not found: .*missing"):
        TFRecordSource(str(tmp_path / "missing"))


@pytest.mark.timeout(120)
def test_two_workers_deliver_every_record_once_and_configs_round_trip(files):
    directory, _, _, parsed = files
    source = TFRecordSource(directory, features={"label": "int64", "emb": ("float32", (2, 3))})
    seq = Pipeline(source, batch_size=4, shuffle=True, seed=1)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers=2, max_queue_size=3)
        labels = [int(x) for b in enqueuer.iter_epoch() for x in b["label"]]
    assert sorted(labels) == sorted(int(p["label"]) for p in parsed)
    loaded = Pipeline.from_json(seq.to_json())
    np.testing.assert_array_equal(loaded.get_batch(1, 1)["emb"], seq.get_batch(1, 1)["emb"])


@pytest.mark.timeout(120)
def test_a_worker_reading_records_imports_neither_tensorflow_nor_pyarrow(files, tmp_path):
    from ._worker_imports import worker_reads

    _, paths, _, _ = files
    source = TFRecordSource(paths, features={"jpeg": "jpeg", "label": "int64"}, output_shape=(8, 8))
    heavy = ["tensorflow", "pyarrow", "scipy", "skimage", "PIL", "h5py"]
    seq = Pipeline(source, batch_size=3)
    assert worker_reads(seq, "seq[0]['jpeg'].shape", heavy, tmp_path) == "(3, 8, 8, 3)"
