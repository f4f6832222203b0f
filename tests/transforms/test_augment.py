"""Random augmentation: keys, pipelines, the built-ins' semantics, configs, summaries."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqpipe import transforms
from seqpipe.pipeline import CustomObjectScope, Pipeline, plot_model, print_summary
from seqpipe.sources import TransformedSource
from seqpipe.transforms import (
    AUGMENTATIONS,
    CutMix,
    Lambda,
    MixUp,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    ToCategorical,
    batch_random,
    sample_random,
)


def draws(x, rng):
    """A random transform whose output is its generator's first draws (one per sample)."""
    return rng.random(len(x))


DRAWS = Lambda(draws, random=True)
IMAGE_AUGMENTATIONS = [
    RandomFlip(),
    RandomCrop(5, 6),
    RandomResizedCrop(5, 4),
    RandomRotation(0.2),
    RandomZoom(0.3, (-0.2, 0.4)),
    RandomTranslation(0.3, 0.2),
    RandomBrightness(0.3),
    RandomContrast(0.5),
]
# Shape-preserving augmentations that keep a constant image constant (reflecting fill).
KEEP_CONSTANT = [t for t in IMAGE_AUGMENTATIONS if not isinstance(t, RandomBrightness)]


def _constant_images(n, h=8, w=7, dtype=np.uint8):
    """Image i is filled with the value 10 + i: its content names its sample."""
    return np.broadcast_to((10 + np.arange(n, dtype=dtype))[:, None, None, None], (n, h, w, 3))


def _all_batches(seq):
    return [seq[i] for i in range(len(seq))]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        parts_x = x if isinstance(x, tuple) else (x,)
        parts_y = y if isinstance(y, tuple) else (y,)
        for p, q in zip(parts_x, parts_y, strict=True):
            assert p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()


# -- keys ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    key=st.tuples(*[st.integers(0, 2**40)] * 3, st.integers(0, 2**40)),
    field=st.integers(0, 3),
    bump=st.integers(1, 2**20),
)
def test_sample_random_is_a_pure_function_of_every_field(key, field, bump):
    seed, epoch, position, sample = key
    first = sample_random(seed, epoch, position, [sample]).random((1, 4))
    again = sample_random(seed, epoch, position, [sample]).random((1, 4))
    assert first.tobytes() == again.tobytes()
    changed = list(key)
    changed[field] += bump
    other = sample_random(*changed[:3], [changed[3]]).random((1, 4))
    assert not np.array_equal(first, other)


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(0, 2**50), min_size=1, max_size=20, unique=True),
    pick=st.data(),
)
def test_a_sample_draws_the_same_whatever_batch_it_is_in(ids, pick):
    # Row i of every draw depends on sample ids[i] alone, call after call.
    subset = pick.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    whole, part = sample_random(3, 1, 0, ids), sample_random(3, 1, 0, subset)
    rows = [ids.index(i) for i in subset]
    for draw in ("random", "normal"):
        a = getattr(whole, draw)(size=(len(ids), 3))
        b = getattr(part, draw)(size=(len(subset), 3))
        np.testing.assert_array_equal(a[rows], b)
    a = whole.integers(0, np.arange(1, len(ids) + 1) * 7, len(ids))
    b = part.integers(0, (np.array(rows) + 1) * 7, len(subset))
    np.testing.assert_array_equal(a[rows], b)


def test_sample_random_matches_numpy_distributions():
    rng = sample_random(0, 0, 0, np.arange(200_000))
    u = rng.uniform(-1.0, 3.0, 200_000)
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.01
    z = rng.normal(2.0, 0.5, (200_000, 2))
    assert abs(z.mean() - 2.0) < 0.005 and abs(z.std() - 0.5) < 0.005
    counts = np.bincount(rng.integers(0, 5, 200_000), minlength=5)
    assert counts.min() > 0.19 * 200_000 and counts.max() < 0.21 * 200_000
    # Neighbouring samples' streams are uncorrelated.
    v = rng.random(200_000)
    assert abs(np.corrcoef(v[:-1], v[1:])[0, 1]) < 0.01


def test_per_sample_draws_need_the_sample_axis_first():
    rng = sample_random(0, 0, 0, [4, 5, 6])
    with pytest.raises(TypeError, match="first axis is the batch's 3 samples"):
        rng.random()
    with pytest.raises(TypeError, match=r"size=\(2, 3\)"):
        rng.uniform(0, 1, (2, 3))
    with pytest.raises(ValueError, match="high > low"):
        rng.integers(5, 5, 3)
    assert rng.random((3, 2, 2)).shape == (3, 2, 2)


def test_generators_reject_bad_keys_and_rngs():
    with pytest.raises(ValueError, match="epoch=-1"):
        sample_random(0, -1, 0, [1])
    with pytest.raises(ValueError, match="seed=-2"):
        batch_random(-2, 0, 0, [1])
    with pytest.raises(TypeError, match="rng=42 of type int"):
        RandomFlip()(np.zeros((1, 2, 2, 3)), rng=42)
    with pytest.raises(TypeError, match="RandomState"):
        RandomFlip()(np.zeros((1, 2, 2, 3)), rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="not both"):
        RandomFlip()(np.zeros((1, 2, 2, 3)), rng=np.random.default_rng(), seed=1)
    with pytest.raises(TypeError, match="not random"):
        Lambda(np.sqrt)(np.ones(2), seed=1)


def test_direct_calls_take_rng_or_seed():
    x = np.random.default_rng(0).random((6, 5, 5, 3)).astype(np.float32)
    t = RandomRotation(0.3)
    assert t(x, seed=4).tobytes() == t(x, seed=4).tobytes()
    assert t(x, seed=4).tobytes() != t(x, seed=5).tobytes()
    assert t(x, seed=4).tobytes() == t(x, rng=np.random.default_rng(4)).tobytes()
    assert t.random and not ToCategorical(3).random and DRAWS.random


# -- in a pipeline ------------------------------------------------------------------


def test_epochs_seeds_and_positions_draw_different_numbers():
    data = np.zeros(16)
    seq = Pipeline(data, batch_size=4, seed=7) | DRAWS | DRAWS
    first = seq.get_batch(1, epoch=0)
    assert first.tobytes() == seq.get_batch(1, epoch=0).tobytes()
    assert first.tobytes() != seq.get_batch(1, epoch=1).tobytes()
    assert first.tobytes() != seq.get_batch(2, epoch=0).tobytes()
    reseeded = Pipeline(data, batch_size=4, seed=8) | DRAWS | DRAWS
    assert first.tobytes() != reseeded.get_batch(1, epoch=0).tobytes()
    one = Pipeline(data, batch_size=4, seed=7) | DRAWS
    assert first.tobytes() != one.get_batch(1, epoch=0).tobytes()  # position 1, not 0


def _by_sample(seq, epoch):
    """{sample id: augmented bytes} over one epoch of a (possibly sharded) pipeline whose
    source holds each sample's id in its first column."""
    out = {}
    for i in range(seq.plan.num_batches):
        batch = seq.get_batch(i, epoch)
        x, w = (batch if isinstance(batch, tuple) else (batch, np.ones(len(batch))))[:2]
        for row, weight in zip(x, w, strict=True):
            if weight > 0:
                out[int(row[0])] = row.tobytes()
    return out


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 9),
    shards=st.integers(1, 4),
    shuffle=st.sampled_from([False, True, "batch"]),
    epoch=st.integers(0, 3),
)
def test_a_sample_gets_the_same_augmentation_whatever_the_topology(
    n, batch_size, shards, shuffle, epoch
):
    # Column 0 holds the id; the rest is what the augmentations change.
    x = np.concatenate([np.arange(n)[:, None], np.zeros((n, 3))], axis=1)
    jitter = Lambda(
        lambda x, rng: x + np.c_[np.zeros(len(x)), rng.normal(size=(len(x), 3))], random=True
    )
    noise = Lambda(lambda x, rng: x + np.c_[np.zeros(len(x)), rng.random((len(x), 3))], random=True)
    reference = _by_sample(Pipeline(x, batch_size=1, seed=9) | jitter | noise, epoch)
    base = Pipeline(x, batch_size=batch_size, shuffle=shuffle, seed=9) | jitter | noise
    got = {}
    for k in range(shards):
        got.update(_by_sample(base.shard(shards, k) if shards > 1 else base, epoch))
    assert got == reference


def test_a_real_augmentation_differs_across_samples_of_identical_images():
    x = np.full((8, 6, 6, 3), 100, np.uint8)
    a, b = (Pipeline(x, batch_size=4, seed=1) | RandomBrightness(0.5))[0][:2]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_mix_transforms_are_keyed_by_the_batchs_sample_ids():
    x = np.random.default_rng(0).random((8, 4, 4, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    assert MixUp.per_sample is False and CutMix.per_sample is False
    assert RandomFlip.per_sample is True
    for mix in (MixUp(), CutMix()):
        seq = Pipeline((x, y), batch_size=4, seed=2) | mix
        resumed = Pipeline((x, y), batch_size=4, seed=2) | mix
        resumed.set_epoch(0, start=4)  # its step 0 is samples 4..7, seq's step 1
        _assert_same_batches([seq[1]], [resumed[0]])
        other = Pipeline((x, y), batch_size=4, seed=3) | mix
        assert seq[1][1].tobytes() != other[1][1].tobytes()
    a = batch_random(2, 0, 0, [0, 1, 2, 3]).random(3)
    assert a.tobytes() == batch_random(2, 0, 0, np.arange(4)).random(3).tobytes()
    assert a.tobytes() != batch_random(2, 0, 0, [1, 0, 2, 3]).random(3).tobytes()


def test_deterministic_stages_do_not_move_the_random_ones():
    # Keys count random transforms only, so caching or adding a deterministic prefix
    # (pipeline.cache drops it) keeps every augmentation.
    data = np.zeros(12)
    plain = Pipeline(data, batch_size=4, seed=3) | DRAWS
    prefixed = Pipeline(data, batch_size=4, seed=3) | Lambda(np.negative) | DRAWS
    _assert_same_batches(_all_batches(plain), _all_batches(prefixed))


@pytest.mark.parametrize("transform", KEEP_CONSTANT, ids=lambda t: type(t).__name__)
def test_random_transforms_keep_the_samples_of_each_batch(transform):
    n = 20
    x, y = _constant_images(n), np.arange(n)
    plain = Pipeline((x, y), batch_size=6, shuffle=True, seed=5)
    augmented = plain | type(transform).from_config({**transform.get_config(), "on": 0})
    for i in range(len(plain)):
        (px, py), (ax, ay) = plain[i], augmented[i]
        assert ay.tobytes() == py.tobytes()  # labels untouched
        # Each image still holds only its own sample's value.
        assert np.array_equal(ax.reshape(len(ax), -1).min(1), px[:, 0, 0, 0])
        assert np.array_equal(ax.reshape(len(ax), -1).max(1), px[:, 0, 0, 0])


def test_labels_are_untouched_by_photometric_augmentation():
    x = np.random.default_rng(1).integers(0, 256, (12, 4, 4, 3), dtype=np.uint8)
    y = np.arange(12)
    seq = Pipeline((x, y), batch_size=5, seed=2) | RandomBrightness(0.4, on=0)
    assert np.concatenate([b[1] for b in seq]).tolist() == y.tolist()


def test_transformed_source_draws_per_sample_read():
    x = np.random.default_rng(0).random((10, 6, 6, 3)).astype(np.float32)
    src = TransformedSource(x, RandomRotation(0.5))
    assert src[2:5].tobytes() == src[[2, 3, 4]].tobytes() == src[np.array([2, 3, 4])].tobytes()
    # Sample 3 is rotated the same however it is read: alone, in a slice, reversed.
    np.testing.assert_array_equal(src[3], src[2:5][1])
    np.testing.assert_array_equal(src[[4, 3, 2]][::-1], src[2:5])
    assert src[-1:].tobytes() == src[[9]].tobytes()
    assert (x | RandomFlip())[[1, 2]].shape == (2, 6, 6, 3)


def test_chained_random_sources_draw_independent_numbers():
    zeros = np.zeros((200, 1))
    add = Lambda(lambda x, rng: x + rng.random((len(x), 1)), random=True)
    once = (zeros | add)[:]
    twice = (zeros | add | add)[:]
    # t2 drew other numbers than t1: twice is not 2 * once.
    assert not np.allclose(twice, 2 * once)
    np.testing.assert_array_equal((zeros | add | add)[5:9], twice[5:9])
    # A source-level augmentation is keyed apart from a pipeline's at seed 0, epoch 0.
    seq = Pipeline(zeros, batch_size=200, seed=0) | add
    assert not np.allclose(seq[0], once)


# -- the built-ins ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("transform", IMAGE_AUGMENTATIONS, ids=lambda t: type(t).__name__)
def test_shapes_dtypes_and_ranges(transform, dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (5, 9, 8, 3)).astype(dtype)
    before = x.copy()
    out = transform(x, seed=1)
    expected = {RandomCrop: (5, 5, 6, 3), RandomResizedCrop: (5, 5, 4, 3)}
    assert out.shape == expected.get(type(transform), x.shape)
    assert out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 255
    assert x.tobytes() == before.tobytes()  # the input is never written to
    gray = transform(x[..., 0], seed=1)  # (n, h, w) batches work too
    assert gray.shape == out.shape[:3] and gray.dtype == dtype


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.integers(0, 255), min_size=1, max_size=6),
    low=st.floats(-1, 1),
    width=st.floats(0, 1),
)
def test_uint8_brightness_never_wraps(values, low, width):
    high = min(1.0, low + width)
    x = np.array(values, np.uint8)[:, None, None, None].repeat(2, axis=1)
    out = RandomBrightness((low, high))(x, seed=0)
    as_float = RandomBrightness((low, high))(x.astype(np.float32), seed=0)
    assert out.dtype == np.uint8
    # Same offsets as the float path, then rounded: never more than half a level off.
    assert np.abs(out.astype(np.float32) - as_float).max() <= 0.5
    if low >= 0:
        assert (out >= x).all()
    if high <= 0:
        assert (out <= x).all()


def test_contrast_scales_about_each_channels_mean():
    x = np.random.default_rng(2).random((4, 5, 5, 3)).astype(np.float64) * 100
    out = RandomContrast((0.5, 0.5), value_range=(-1e9, 1e9))(x, seed=0)
    factors = RandomContrast((0.5, 0.5))._range
    mean = x.mean(axis=(1, 2), keepdims=True)
    ratio = (out - mean) / (x - mean)
    per_image = ratio.reshape(4, -1)
    assert np.allclose(per_image, per_image[:, :1])  # one factor per image
    assert ((per_image >= 1 - factors[0] - 1e-9) & (per_image <= 1 + factors[1] + 1e-9)).all()


def test_flip_modes_flip_whole_images():
    x = np.random.default_rng(0).integers(0, 256, (32, 4, 5, 3), dtype=np.uint8)
    for mode, choices in [
        ("horizontal", lambda im: [im, im[:, ::-1]]),
        ("vertical", lambda im: [im, im[::-1]]),
        ("horizontal_and_vertical", lambda im: [im, im[::-1], im[:, ::-1], im[::-1, ::-1]]),
    ]:
        out = RandomFlip(mode)(x, seed=1)
        seen = set()
        for image, result in zip(x, out, strict=True):
            matches = [k for k, c in enumerate(choices(image)) if np.array_equal(c, result)]
            assert matches
            seen.add(matches[0])
        assert seen == set(range(len(choices(x[0]))))  # every variant occurs in 32 images


def test_random_crop_takes_windows_at_per_image_offsets():
    x = np.arange(16 * 10 * 12).reshape(16, 10, 12)
    out = RandomCrop(4, 5)(x, seed=0)
    offsets = set()
    for image, crop in zip(x, out, strict=True):
        top, left = np.argwhere(image == crop[0, 0])[0]
        assert np.array_equal(image[top : top + 4, left : left + 5], crop)
        offsets.add((top, left))
    assert len(offsets) > 1
    assert RandomCrop(10, 12)(x, seed=0).tobytes() == x.tobytes()


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    scale_lo=st.floats(0.01, 1),
    ratio_lo=st.floats(0.2, 2),
    ratio_span=st.floats(1, 3),
)
def test_resized_crop_boxes_fit_the_image_and_the_ranges(h, w, scale_lo, ratio_lo, ratio_span):
    crop = RandomResizedCrop(8, 8, scale=(scale_lo, 1.0), ratio=(ratio_lo, ratio_lo * ratio_span))
    boxes = crop.boxes(np.random.default_rng(0), 50, h, w)
    top, left, bh, bw = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (bh >= 1).all() and (bw >= 1).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()


def test_resized_crop_covers_the_scale_range_and_resizes():
    crop = RandomResizedCrop(16, 16, scale=(0.25, 0.5), ratio=(1.0, 1.0))
    boxes = crop.boxes(np.random.default_rng(0), 2000, 200, 200)
    area = boxes[:, 2] * boxes[:, 3] / 200**2
    assert area.min() >= 0.24 and area.max() <= 0.51 and np.ptp(area) > 0.2
    assert (boxes[:, 2] == boxes[:, 3]).all()
    x = np.random.default_rng(1).random((3, 40, 30)).astype(np.float32)
    out = crop(x, seed=2)
    assert out.shape == (3, 16, 16) and out.dtype == np.float32
    assert x.min() <= out.min() and out.max() <= x.max()


def test_affine_augmentations_follow_keras_directions():
    image = np.arange(16.0).reshape(1, 4, 4)
    quarter = RandomRotation((0.25, 0.25), interpolation="nearest")(image, seed=0)
    assert np.array_equal(quarter[0], np.rot90(image[0]))  # counter-clockwise
    shifted = RandomTranslation((0.25, 0.25), (-0.5, -0.5), fill_mode="constant")(image, seed=0)
    expected = np.zeros((4, 4))
    expected[1:, :2] = image[0, :3, 2:]  # down one row, left two columns
    assert np.array_equal(shifted[0], expected)
    same = RandomZoom((0.0, 0.0))(image, seed=0)
    assert np.allclose(same, image)
    zoomed_in = RandomZoom((-0.5, -0.5), interpolation="nearest")(
        np.arange(64.0).reshape(1, 8, 8), seed=0
    )
    assert np.isin(zoomed_in, np.arange(64.0).reshape(8, 8)[2:6, 2:6]).all()
    wrapped = RandomTranslation(0, (0.5, 0.5), fill_mode="wrap")(image, seed=0)
    assert np.array_equal(wrapped[0], np.roll(image[0], 2, axis=1))
    for mode in ("reflect", "nearest"):
        out = RandomTranslation(0, (0.25, 0.25), fill_mode=mode)(image, seed=0)
        assert np.array_equal(out[0, :, 0], image[0, :, 0])  # both repeat the edge column


@pytest.mark.parametrize("mix", [MixUp(0.4), CutMix(1.0)], ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_mixing_weights_images_and_labels_alike(mix, dtype):
    n = 16
    # Image i is constant 10 * i: its mean pixel is the label-weighted mean of 10 * class.
    x = np.broadcast_to((10 * np.arange(n, dtype=dtype))[:, None, None, None], (n, 8, 8, 3))
    y = np.eye(n, dtype=np.float32)
    weights = np.arange(n, dtype=np.float32)
    mixed_x, mixed_y, same_w = mix((x, y, weights), seed=3)
    assert same_w is weights and mixed_x.dtype == dtype and mixed_y.dtype == np.float32
    assert np.allclose(mixed_y.sum(1), 1)
    expected = mixed_y @ (10 * np.arange(n))
    tolerance = 0.5 if dtype == np.uint8 and isinstance(mix, MixUp) else 1e-3
    assert np.abs(mixed_x.mean(axis=(1, 2, 3)) - expected).max() <= tolerance
    assert (mixed_y.max(1) < 1).any()  # something was mixed
    as_dict = mix({"images": x, "labels": y}, seed=3)
    assert as_dict["images"].tobytes() == mixed_x.tobytes()


def test_mixing_needs_labels():
    x = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"without labels: ndarray of shape \(4, 3, 3, 3\)"):
        MixUp()(x, seed=0)
    with pytest.raises(ValueError, match="without labels"):
        CutMix()((x,), seed=0)
    with pytest.raises(ValueError, match=r"integer class ids of shape \(4,\)"):
        MixUp()((x, np.arange(4)), seed=0)
    with pytest.raises(ValueError, match=r"'labels'"):
        MixUp()({"images": x, "y": np.eye(4)}, seed=0)
    with pytest.raises(ValueError, match="alpha=0"):
        MixUp(alpha=0)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: RandomBrightness(1.5), "factor=1.5"),
        (lambda: RandomBrightness((0.1, 0.2, 0.3)), r"factor=\(0.1, 0.2, 0.3\)"),
        (lambda: RandomContrast(-0.2), "factor=-0.2"),
        (lambda: RandomContrast(0.2, value_range=(1, 0)), r"value_range=\(1, 0\)"),
        (lambda: RandomRotation("a lot"), "factor='a lot'"),
        (lambda: RandomZoom(0.1, width_factor=2), "width_factor=2"),
        (lambda: RandomTranslation(0.1, -3), "width_factor=-3"),
        (lambda: RandomRotation(0.1, fill_mode="mirror"), "fill_mode='mirror'"),
        (lambda: RandomFlip("diagonal"), "mode='diagonal'"),
        (lambda: RandomCrop(0, 3), "height=0"),
        (lambda: RandomResizedCrop(4, 4, scale=(0.5, 0.1)), r"scale=\(0.5, 0.1\)"),
        (lambda: RandomResizedCrop(4, 4, ratio=(0, 1)), r"ratio=\(0, 1\)"),
        (lambda: RandomResizedCrop(4, 4, interpolation="area"), "interpolation='area'"),
    ],
)
def test_bad_arguments_name_the_value(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_batches_name_the_problem():
    with pytest.raises(ValueError, match=r"crop \(5, 4\) is larger than the images \(4, 9\)"):
        RandomCrop(5, 4)(np.zeros((2, 4, 9, 3)), seed=0)
    with pytest.raises(ValueError, match=r"Received shape \(2, 4\)"):
        RandomFlip()(np.zeros((2, 4)), seed=0)


# -- configs, summaries, plots ------------------------------------------------------


def test_json_round_trip_gives_identical_batches():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 12, 12, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 24)
    seq = Pipeline((x, y), batch_size=8, shuffle=True, seed=11)
    for t in IMAGE_AUGMENTATIONS:
        seq = seq | type(t).from_config({**t.get_config(), "on": 0})
    seq = seq | ToCategorical(4, on=1) | MixUp(0.3) | CutMix(on=[0, 1])
    seq = seq | Lambda(draws, on=1, random=True, name="noise")
    saved = seq.to_json(external_sources=True)
    loaded = Pipeline.from_json(json.loads(json.dumps(saved)), sources={"0": x, "1": y})
    _assert_same_batches(_all_batches(seq), _all_batches(loaded))
    assert {cls.__name__ for cls in AUGMENTATIONS} <= {
        spec["class_name"] for spec in json.loads(saved)["config"]["transforms"]
    }


def test_user_random_transform_round_trips_under_custom_object_scope():
    class Jitter(RandomBrightness):
        pass

    seq = Pipeline(np.full((8, 4, 4, 3), 9, np.uint8), batch_size=4, seed=1) | Jitter(0.5)
    config = seq.get_config(external_sources=True)
    with CustomObjectScope({"Jitter": Jitter}):
        loaded = Pipeline.from_config(config, sources={"0": seq.sources})
    _assert_same_batches(_all_batches(seq), _all_batches(loaded))


def test_summary_and_plot_mark_random_stages(tmp_path):
    x = np.zeros((8, 6, 6, 3), np.uint8)
    seq = Pipeline(x, batch_size=4) | RandomFlip("horizontal") | Lambda(np.negative)
    lines = []
    print_summary(seq, print_fn=lines.append)
    flip_row = next(line for line in lines if "RandomFlip" in line)
    assert flip_row.startswith("[random] RandomFlip(mode='horizontal')")
    assert not any(line.startswith("[random] Lambda") for line in lines)
    graph = plot_model(seq, to_file=str(tmp_path / "p.dot"), show_layer_names=False)
    dot = graph.to_string()
    assert "[random] RandomFlip" in dot and dot.count("dashed") == 1


@pytest.mark.timeout(120)
def test_affine_augmentations_match_keras_layers():
    keras = pytest.importorskip("keras")
    x = np.arange(48, dtype=np.float32).reshape(1, 6, 8, 1)
    pairs = [
        ("RandomRotation", dict(factor=(0.1, 0.1), fill_mode="reflect")),
        ("RandomRotation", dict(factor=(0.25, 0.25), interpolation="nearest")),
        ("RandomZoom", dict(height_factor=(0.5, 0.5), fill_mode="constant")),
        ("RandomZoom", dict(height_factor=(-0.3, -0.3), width_factor=(0.2, 0.2))),
        ("RandomTranslation", dict(height_factor=(0.2, 0.2), width_factor=(0.3, 0.3))),
        (
            "RandomTranslation",
            dict(height_factor=(-0.4, -0.4), width_factor=(0, 0), fill_mode="nearest"),
        ),
    ]
    for name, kwargs in pairs:
        theirs = np.asarray(getattr(keras.layers, name)(**kwargs)(x, training=True))
        ours = getattr(transforms, name)(**kwargs)(x, seed=0)
        np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=f"{name}({kwargs})")
