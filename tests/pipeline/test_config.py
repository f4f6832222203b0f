import json

import h5py
import numpy as np
import pytest

from seqpipe.pipeline import CustomObjectScope, Pipeline, Sequence, register
from seqpipe.sources import HDF5Matrix
from seqpipe.transforms import Lambda, Normalize, Resize, ToCategorical, Transform


class Scale(Transform):
    """A user transform, found through the custom objects."""

    def __init__(self, factor, on=None):
        super().__init__(on=on)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {"factor": self.factor, "on": self.on}


def offset(x):
    return x + 0.5


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.fixture
def images(tmp_path):
    path = tmp_path / "images.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["x"] = rng.integers(0, 255, (40, 12, 12, 3)).astype("uint8")
        f["y"] = np.arange(40) % 4
    return path


def test_round_trip_yields_identical_batches(images):
    x = HDF5Matrix(images, "x", start=2, end=38, normalizer=np.sqrt)
    y = HDF5Matrix(images, "y", start=2, end=38)
    p = (
        Pipeline((x, y), batch_size=8, shuffle=True, seed=4)
        | Resize((6, 6), on=0)
        | Normalize(on=0)
        | Lambda(offset, on=0)
        | Scale(3.0, on=0)
        | ToCategorical(4, on=1)
    ).shard(2, 1)
    text = p.to_json()
    json.loads(text)  # plain JSON
    with CustomObjectScope({"Scale": Scale}):
        loaded = Pipeline.from_json(text)
    assert repr(loaded) == repr(p)
    _same_batches(p, loaded)
    loaded.on_epoch_end()
    p.on_epoch_end()
    _same_batches(p, loaded)


def test_unresolvable_transform_name_is_named(images):
    config = (Pipeline(HDF5Matrix(images, "y")) | Scale(2)).get_config()
    with pytest.raises(ValueError, match=r"Unknown object name 'Scale'.*CustomObjectScope"):
        Pipeline.from_config(config)
    loaded = Pipeline.from_config(config, custom_objects={"Scale": Scale})
    assert loaded[0].tolist() == [2 * (i % 4) for i in range(32)]


def test_in_memory_sources_need_to_be_supplied_again():
    x = np.arange(10.0)
    p = Pipeline({"x": x, "y": x % 2}, batch_size=4)
    with pytest.raises(ValueError, match="'x' is an in-memory array of shape"):
        p.get_config()
    config = p.get_config(external_sources=True)
    assert config["sources"]["x"]["class_name"] == "InMemoryArray"
    with pytest.raises(ValueError, match="needs the in-memory source 'x'"):
        Pipeline.from_config(config)
    loaded = Pipeline.from_config(config, sources={"x": x, "y": x % 2})
    assert loaded[2]["x"].tolist() == [8.0, 9.0]


def test_lambdas_and_closures_cannot_be_saved_but_registered_functions_can():
    p = Pipeline(np.arange(4.0), batch_size=2) | (lambda b: b * 2)
    with pytest.raises(ValueError, match=r"transform 0.*cannot be saved by reference"):
        p.get_config(external_sources=True)

    @register("double_it")
    def double(b):
        return b * 2

    config = (Pipeline(np.arange(4.0), batch_size=2) | double).get_config(True)
    assert config["transforms"][0]["config"]["fn"] == "double_it"
    loaded = Pipeline.from_config(config, sources={"0": np.arange(4.0)})
    assert loaded[1].tolist() == [4.0, 6.0]


@register()
class Countdown(Sequence):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return np.full(2, self.n - index)

    def get_config(self):
        return {"n": self.n}


def test_user_sequences_and_nested_pipelines_round_trip():
    p = Pipeline(Pipeline(Countdown(3)) | Lambda(np.negative), shuffle="batch", seed=1)
    loaded = Pipeline.from_json(p.to_json())
    assert [b.tolist() for b in loaded] == [b.tolist() for b in p]
    with pytest.raises(ValueError, match="cannot save"):
        Pipeline(type("Opaque", (Sequence,), {"__len__": lambda s: 1})()).get_config()
