"""`resize` / `Resize`: OpenCV kernels against scikit-image, dtypes, routing."""

import subprocess
import sys

import numpy as np
import pytest
from skimage.transform import resize as sk_resize

from seqpipe.transforms import Resize, resize
from seqpipe.transforms.resize_kernels import resize_batch, resize_image


def smooth_batch(n=3, size=(96, 120)):
    """Smooth uint8 RGB images: gradients and low-frequency waves."""
    yy, xx = np.mgrid[: size[0], : size[1]] / 16.0
    images = [
        np.stack(
            [
                127 + 120 * np.sin(xx + k),
                127 + 120 * np.cos(yy * 0.7 - k),
                255 * (xx + yy) / (xx + yy).max(),
            ],
            axis=-1,
        )
        for k in range(n)
    ]
    return np.rint(np.stack(images)).astype(np.uint8)


@pytest.mark.parametrize("shape", [(40, 50), (30, 90), (150, 200)])
def test_uint8_stays_uint8_and_close_to_scikit_image(shape):
    images = smooth_batch()
    expected = sk_resize(images, (3, *shape, 3), preserve_range=True, anti_aliasing=True)
    for dtype in (None, "uint8"):
        out = resize(images, shape, dtype=dtype)
        assert out.dtype == np.uint8 and out.shape == (3, *shape, 3)
        assert np.abs(out - expected).mean() < 0.5
        assert np.abs(out - expected).max() <= 2  # rounding after blur and interpolation


def test_float_results_match_scikit_image():
    images = smooth_batch()
    for anti_aliasing in (None, False):
        out = resize(images, (40, 50), anti_aliasing=anti_aliasing)  # default float32
        expected = sk_resize(
            images, (3, 40, 50, 3), preserve_range=True, anti_aliasing=anti_aliasing
        )
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, expected, atol=1e-4)  # of values 0-255
    doubles = images.astype(np.float64) / 255
    out = resize(doubles, (40, 50), dtype=None)
    assert out.dtype == np.float64
    expected = sk_resize(doubles, (3, 40, 50, 3), anti_aliasing=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_without_anti_aliasing_it_samples_as_tensorflow_resizes():
    tf = pytest.importorskip("tensorflow")
    noise = np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    for shape in [(80, 100), (30, 30), (150, 200)]:
        theirs = tf.image.resize(noise, shape, antialias=False).numpy()  # bilinear
        ours = resize(noise, shape, anti_aliasing=False)  # float32
        np.testing.assert_allclose(ours, theirs, atol=0.01)  # OpenCV's fixed-point weights
        as_uint8 = resize(noise, shape, anti_aliasing=False, dtype=None)
        assert np.abs(as_uint8 - np.rint(theirs)).max() <= 1


def test_shrinking_is_anti_aliased_unless_turned_off():
    # A one-pixel checkerboard shrunk 3x is flat grey when anti-aliased; sampled
    # without smoothing it keeps a beat pattern.
    board = (np.indices((90, 90)).sum(axis=0) % 2 * 255).astype(np.uint8)[None]
    smooth = resize(board, (30, 30), dtype=None)
    aliased = resize(board, (30, 30), anti_aliasing=False, dtype=None)
    assert smooth.std() < 10 and abs(float(smooth.mean()) - 127.5) < 3
    assert aliased.std() > 60


def test_other_orders_and_unscaled_integers_take_scikit_image():
    images = smooth_batch(2, (20, 24))
    np.testing.assert_array_equal(
        resize(images, (10, 12), order=2, dtype=None),
        np.rint(sk_resize(images, (2, 10, 12, 3), order=2, preserve_range=True)).astype(np.uint8),
    )
    scaled = resize(images, (10, 12), preserve_range=False, dtype=None)
    np.testing.assert_array_equal(scaled, sk_resize(images, (2, 10, 12, 3)))
    assert scaled.dtype == np.float64 and scaled.max() <= 1.0


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((2, 20, 24), "uint8"),
        ((2, 20, 24, 1), "uint8"),
        ((2, 20, 24, 4), "uint8"),
        ((2, 20, 24, 5), "float32"),
        ((2, 20, 24, 3), "uint16"),
        ((2, 20, 24, 3), "int32"),
    ],
)
def test_channels_and_dtypes_keep_their_layout(shape, dtype):
    images = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    for target in [(10, 12), (40, 30)]:
        out = resize(images, target, dtype=None)
        assert out.shape == (shape[0], *target, *shape[3:]) and out.dtype == np.dtype(dtype)
        expected = sk_resize(
            images.astype(np.float64), out.shape, preserve_range=True, anti_aliasing=True
        )
        assert np.abs(out - expected).mean() < 2.0


def test_batch_kernel_is_the_per_image_kernel_and_images_do_not_mix():
    images = smooth_batch(4, (50, 40))
    batch = resize_batch(images, (20, 30), order=3)
    for image, out in zip(images, batch, strict=True):
        np.testing.assert_array_equal(out, resize_image(image, (20, 30), order=3))
    halves = np.stack([np.zeros((8, 8)), np.full((8, 8), 100.0)])
    out = resize(halves, (3, 5), order=0, anti_aliasing=True)
    np.testing.assert_allclose(out[0], 0)
    np.testing.assert_allclose(out[1], 100, rtol=1e-6)


def test_resize_transform_dtypes_and_config():
    images = smooth_batch(2, (40, 40))
    x, _ = Resize((32, 32), on=0)((images, np.arange(2)))
    assert x.dtype == np.float32 and x.shape == (2, 32, 32, 3)
    # The README tour's resize: scikit-image's float values to 4 decimals.
    expected = sk_resize(images, (2, 32, 32, 3), preserve_range=True, anti_aliasing=True)
    np.testing.assert_allclose(x, expected, atol=5e-5)
    as_uint8 = Resize((32, 32), dtype="uint8")(images)
    assert as_uint8.dtype == np.uint8
    np.testing.assert_array_equal(as_uint8, resize(images, (32, 32), dtype=None))
    clone = Resize.from_config(Resize((32, 32), anti_aliasing=False, dtype=None).get_config())
    assert clone.get_config()["anti_aliasing"] is False and clone.dtype is None


@pytest.mark.timeout(60)
def test_fast_path_does_not_import_scipy():
    code = (
        "import sys, numpy as np; from seqpipe.transforms import Resize; "
        "Resize((32, 32))(np.zeros((2, 64, 64, 3), np.uint8)); "
        "print('scipy' in sys.modules, 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_default_anti_aliasing_follows_scikit_image_for_nearest():
    # scikit-image smooths nearest-neighbour shrinking of floats, not of integers.
    board = (np.indices((90, 90)).sum(axis=0) % 2 * 255).astype(np.uint8)[None]
    assert resize(board, (30, 30), order=0, dtype=None).std() > 60
    floats = resize(board.astype(np.float32), (30, 30), order=0)
    expected = sk_resize(board.astype(np.float32), (1, 30, 30), order=0)
    np.testing.assert_allclose(floats, expected, atol=0.5)
    assert floats.std() < 10
