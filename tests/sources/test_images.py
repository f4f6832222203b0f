import numpy as np
import pytest
from skimage.io import imsave

from seqpipe.pipeline import Pipeline
from seqpipe.sources import ImageFiles
from seqpipe.transforms import ToCategorical


@pytest.fixture
def tree(tmp_path):
    """root/<class>/<image>: RGB, grayscale and RGBA files of two sizes."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name, kinds in {"cats": ["rgb", "gray"], "dogs": ["rgba", "rgb", "rgb"]}.items():
        (root / name).mkdir(parents=True)
        for i, kind in enumerate(kinds):
            size = (20, 16) if i % 2 else (10, 8)
            image = {
                "rgb": rng.integers(0, 255, (*size, 3)),
                "gray": rng.integers(0, 255, size),
                "rgba": rng.integers(0, 255, (*size, 4)),
            }[kind].astype(np.uint8)
            imsave(root / name / f"{i}.png", image, check_contrast=False)
    (root / "dogs" / "readme.txt").write_text("not an image")
    return root


def test_from_directory_labels_sorted_classes(tree):
    images, labels, names = ImageFiles.from_directory(tree, output_shape=(12, 12))
    assert names == ["cats", "dogs"]
    assert labels.tolist() == [0, 0, 1, 1, 1] and labels.dtype == np.int64
    assert [p.split("/")[-2:] for p in images.paths][:2] == [["cats", "0.png"], ["cats", "1.png"]]
    batch = images[0:5]
    assert batch.shape == (5, 12, 12, 3) and batch.dtype == np.uint8


def test_grayscale_and_rgba_become_rgb_exactly(tree):
    images, _, _ = ImageFiles.from_directory(tree)
    gray = images[1]
    assert gray.shape == (20, 16, 3)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    from skimage.io import imread

    rgba = imread(images.paths[2])
    assert np.array_equal(images[2], rgba[..., :3])


def test_ragged_batch_without_output_shape_names_the_problem(tree):
    images, _, _ = ImageFiles.from_directory(tree)
    assert images[[0, 2]].shape == (2, 10, 8, 3)  # same size: fine
    with pytest.raises(ValueError, match=r"different shapes .* pass output_shape"):
        images[0:2]


def test_dtype_and_resize_preserve_range(tree):
    images, _, _ = ImageFiles.from_directory(tree)
    as_float = ImageFiles(images.paths, output_shape=(10, 8), dtype="float32")
    out = as_float[[0, 1]]
    assert out.dtype == np.float32 and out.max() > 1.0
    np.testing.assert_array_equal(out[0], images[0].astype(np.float32))  # no resize needed


def test_bad_files_are_named(tree, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        ImageFiles([broken])[0]
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageFiles([tmp_path / "missing.png"])
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFiles.from_directory(tmp_path / "photos" / "cats")
    with pytest.raises(ValueError, match="output_shape"):
        ImageFiles([broken], output_shape=(0, 3))


def test_images_feed_a_pipeline_and_wrong_length_labels_fail(tree):
    images, labels, _ = ImageFiles.from_directory(tree, output_shape=(8, 8))
    p = Pipeline((images, labels), batch_size=2, shuffle=True, seed=0) | ToCategorical(2, on=1)
    assert sum(len(x) for x, _ in p) == 5
    with pytest.raises(ValueError, match=r"same length.*\{0: 5, 1: 4\}"):
        Pipeline((images, labels[:4]))
    loaded = Pipeline.from_json(p.to_json(external_sources=True), sources={"1": labels})
    loaded.set_epoch(p.epoch)  # iterating p advanced it to epoch 1
    np.testing.assert_array_equal(loaded[0][0], p[0][0])


def photo(height=120, width=160):
    """A smooth RGB picture (JPEG-friendly), uint8."""
    yy, xx = np.mgrid[:height, :width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1).astype(np.uint8)


def jpeg_bytes(image, **save_args):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95, **save_args)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_exif_transpose(tmp_path, orientation):
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(jpeg_bytes(photo(), exif=exif))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(ImageFiles([path])[0], upright)
    # output_shape is the displayed shape; the resize matches resizing the upright image.
    resized = ImageFiles([path], output_shape=(30, 20))[0]
    expected = np.asarray(Image.fromarray(upright).resize((20, 30), Image.Resampling.BOX))
    assert resized.shape == (30, 20, 3)
    assert np.abs(resized.astype(int) - expected).mean() < 4


def test_formats_and_modes_become_rgb(tmp_path):
    from PIL import Image

    rgb = photo(40, 48)
    gray = rgb[..., 0]
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    Image.fromarray(rgb).save(tmp_path / "b.tif")
    Image.fromarray(rgb).save(tmp_path / "c.webp", lossless=True)
    Image.fromarray(rgb).convert("P").save(tmp_path / "d.gif")
    Image.fromarray(gray).save(tmp_path / "e.jpg", quality=95)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "f.jpg", quality=95)
    Image.fromarray(np.dstack([rgb, gray])).save(tmp_path / "g.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "h.png")
    names = ["a.bmp", "b.tif", "c.webp", "d.gif", "e.jpg", "f.jpg", "g.png"]
    images = ImageFiles([tmp_path / n for n in names])
    batch = images[:]
    assert batch.shape == (7, 40, 48, 3) and batch.dtype == np.uint8
    for name, image in zip(names, batch, strict=True):
        expected = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        np.testing.assert_array_equal(image, expected, err_msg=name)
    assert np.array_equal(batch[4][..., 0], batch[4][..., 2])  # grayscale JPEG: R == B
    sixteen = ImageFiles([tmp_path / "h.png"])[0]
    assert sixteen.dtype == np.uint16 and sixteen.shape == (40, 48, 3)
    np.testing.assert_array_equal(sixteen[..., 1], gray.astype(np.uint16) * 257)


def test_file_pillow_cannot_identify_is_read_by_imageio(tmp_path):
    import tifffile

    values = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", values, photometric="rgb")
    image = ImageFiles([tmp_path / "float.tif"])[0]
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, values)


def test_corrupt_or_truncated_jpeg_names_the_file(tmp_path):
    data = jpeg_bytes(photo())
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[200:600] = b"\xff" * 400
    (tmp_path / "corrupt.jpg").write_bytes(bytes(corrupt))
    for name in ["truncated.jpg", "corrupt.jpg"]:
        for shape in [None, (32, 32)]:
            with pytest.raises(ValueError, match=rf"cannot read image .*{name}"):
                ImageFiles([tmp_path / name], output_shape=shape)[0]


def test_dct_scaling_only_when_target_is_at_most_half():
    from seqpipe.sources._decode import _dct_scale, decode_image

    assert _dct_scale((640, 480), (224, 224)) == 2
    assert _dct_scale((640, 480), (100, 100)) == 4
    assert _dct_scale((640, 480), (60, 60)) == 8
    assert _dct_scale((447, 600), (224, 224)) == 1
    data = jpeg_bytes(photo(480, 640))
    reduced = decode_image(data, "x.jpg", (112, 150)).astype(int)
    full = decode_image(data, "x.jpg")
    from seqpipe.transforms.resize_kernels import resize_image

    assert np.abs(reduced - resize_image(full, (112, 150))).mean() < 2


@pytest.mark.timeout(60)
def test_reading_jpegs_does_not_import_scipy(tmp_path):
    import subprocess
    import sys

    (tmp_path / "x.jpg").write_bytes(jpeg_bytes(photo()))
    code = (
        "import sys; from seqpipe.sources import ImageFiles; "
        f"ImageFiles([{str(tmp_path / 'x.jpg')!r}], output_shape=(32, 32))[[0, 0]]; "
        "print('scipy' in sys.modules, 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.timeout(60)
def test_a_worker_reading_jpegs_imports_no_heavy_library(tmp_path):
    from seqpipe.pipeline import Pipeline

    from ._worker_imports import worker_reads

    (tmp_path / "x.jpg").write_bytes(jpeg_bytes(photo()))
    images = ImageFiles([tmp_path / "x.jpg"] * 2, output_shape=(32, 32))
    heavy = ["scipy", "skimage", "PIL", "pyarrow", "filelock", "h5py", "tensorflow"]
    seq = Pipeline(images, batch_size=2)
    assert worker_reads(seq, "seq[0].shape", heavy, tmp_path) == "(2, 32, 32, 3)"


def test_anti_aliasing_off_samples_like_tf_and_is_kept_in_the_config(tmp_path):
    from seqpipe.transforms.resize_kernels import resize_image

    path = tmp_path / "noise.png"  # fine texture, where the blur shows
    imsave(path, np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    full = ImageFiles([path])[0]
    sampled = ImageFiles([path], output_shape=(80, 100), anti_aliasing=False)
    np.testing.assert_array_equal(sampled[0], resize_image(full, (80, 100), anti_aliasing=False))
    smooth = ImageFiles([path], output_shape=(80, 100))[0]
    np.testing.assert_array_equal(smooth, resize_image(full, (80, 100)))
    assert not np.array_equal(smooth, sampled[0])
    config = sampled.get_config()
    assert config["anti_aliasing"] is False
    np.testing.assert_array_equal(ImageFiles(**config)[0], sampled[0])
