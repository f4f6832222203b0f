import numpy as np
import pytest

from seqpipe.sources import TransformedSource
from seqpipe.transforms import (
    Lambda,
    Normalize,
    Resize,
    ToCategorical,
    Transform,
    normalize,
    resize,
    to_categorical,
)


def test_to_categorical_matches_keras_semantics():
    out = to_categorical([0, 2, 1])
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    col = to_categorical(np.array([[1], [0]]), num_classes=4, dtype="int32")
    assert col.shape == (2, 4) and col.dtype == np.int32 and col[0, 1] == 1
    grid = to_categorical(np.zeros((2, 3), int), 2)
    assert grid.shape == (2, 3, 2)


@pytest.mark.parametrize(
    "labels, num_classes, match",
    [
        ([0, -1], None, "label -1"),
        ([0, 3], 3, "label 3 is out of range"),
        ([0.5, 1.0], None, "non-integral"),
        (np.zeros(0, int), None, "empty"),
        (["a"], None, "dtype"),
    ],
)
def test_to_categorical_rejects_bad_labels(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        to_categorical(labels, num_classes)


def test_normalize_is_a_copy_and_keeps_zero_vectors():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert not np.isnan(out).any()
    assert x[0, 0] == 3.0
    np.testing.assert_allclose(normalize(np.array([[1, 1]]), order=1), [[0.5, 0.5]])
    np.testing.assert_allclose(normalize(np.array([[3.0], [4.0]]), axis=0), [[0.6], [0.8]])


def test_normalize_transform_refuses_the_sample_axis():
    with pytest.raises(ValueError, match="across samples"):
        Normalize(axis=0)(np.ones((2, 2)))


def test_resize_batch_shapes_dtypes_and_ranges():
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 12, 3)).astype("uint8")
    out = resize(images, (8, 6))
    assert out.shape == (3, 8, 6, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255 and out.max() > 1
    scaled = resize(images, (8, 6), preserve_range=False, dtype=None)
    assert scaled.dtype == np.float64 and scaled.max() <= 1.0
    gray = resize(np.ones((2, 5, 5)), (10, 10), order=0)
    np.testing.assert_array_equal(gray, np.ones((2, 10, 10)))


def test_resize_does_not_mix_images():
    images = np.stack([np.zeros((8, 8)), np.full((8, 8), 100.0)])
    out = resize(images, (4, 4), anti_aliasing=True)
    np.testing.assert_allclose(out[0], 0)
    np.testing.assert_allclose(out[1], 100, rtol=1e-6)


def test_resize_errors():
    with pytest.raises(ValueError, match="output_shape"):
        Resize((0, 3))
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        resize(np.ones((4, 4)), (2, 2))


def test_on_selects_the_element():
    batch = (np.ones((2, 4, 4)), np.array([1, 0]))
    x, y = Resize((2, 2), on=0)(batch)
    assert x.shape == (2, 2, 2) and y is batch[1]
    d = ToCategorical(2, on="y")({"x": 1, "y": np.array([1])})
    assert d["y"].tolist() == [[0.0, 1.0]] and d["x"] == 1


def test_on_errors_name_the_problem():
    with pytest.raises(KeyError, match="'z' is not a key"):
        Normalize(on="z")({"x": np.ones((1, 2))})
    with pytest.raises(TypeError, match="on=5 does not index"):
        Normalize(on=5)((np.ones((1, 2)),))
    with pytest.raises(TypeError, match="whole tuple batch"):
        Normalize()((np.ones((1, 2)), 1))
    with pytest.raises(TypeError, match="needs a tuple or dict"):
        Normalize(on=0)(np.ones((1, 2)))


def test_configs_round_trip():
    for t in [Normalize(axis=1, order=1, on=0), ToCategorical(4, "int8", on=1), Resize((3, 5))]:
        clone = type(t).from_config(t.get_config())
        assert clone.get_config() == t.get_config()


def test_lambda_config_by_reference_only_for_importable_functions():
    t = Lambda(np.sqrt, on=0)
    clone = Lambda.from_config(t.get_config())
    assert clone.fn is np.sqrt
    with pytest.raises(ValueError, match="cannot be saved by reference"):
        Lambda(lambda x: x).get_config()


def test_array_or_transform_gives_a_transformed_source():
    source = np.arange(6).reshape(3, 2).astype(float) | Normalize()
    assert isinstance(source, TransformedSource) and len(source) == 3
    np.testing.assert_allclose(source[[2]], normalize(np.array([[4.0, 5.0]])))


def test_base_call_must_be_implemented():
    with pytest.raises(NotImplementedError, match="Bare"):
        type("Bare", (Transform,), {})()(np.ones(1))
