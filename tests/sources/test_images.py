import numpy as np
import pytest
from skimage.io import imsave

from pipeline import Pipeline
from sources import ImageFiles
from transforms import ToCategorical


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
    np.testing.assert_array_equal(loaded[0][0], p[0][0])
