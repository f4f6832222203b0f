"""Image folder benchmark: JPEGs decoded and resized to 224x224x3, loaders side by side.

Run: ``python benchmarks/images.py`` (``--n 400 --repeats 1`` for a quick look). It
builds, once, a folder of ``--n`` photo-like JPEGs (default 2,000) in 10 class folders
under ``--cache`` (default ``/tmp/seqpipe-bench-images``): random crops with sides of
350-499 px of ``skimage.data`` photographs, quality 90. Every loader then decodes and
resizes each file to 224x224x3 in batches of 64 with a parallelism of 2:

- ``tf.data``: ``read_file`` + ``decode_jpeg`` + ``tf.image.resize`` (bilinear, TF's
  default: no anti-aliasing, default DCT method) + ``batch(64)``, with
  ``num_parallel_calls=2``, and with ``AUTOTUNE`` (map and prefetch);
- ``keras.utils.image_dataset_from_directory`` (bilinear, no anti-aliasing);
- a PyTorch ``DataLoader`` over a PIL dataset (open, convert RGB, bilinear resize:
  anti-aliased), 2 workers;
- a serial PIL loop (the same per-image code, one process);
- seqpipe: ``ImageFiles.from_directory(root, (224, 224))`` -> ``Pipeline(batch_size=64)``
  -> ``parallel.OrderedEnqueuer``, 2 processes (OpenCV decode, scikit-image's
  Gaussian anti-aliasing, uint8, EXIF orientation applied).

Each loader runs in a fresh process, ``--repeats`` times; the table shows medians of
epoch 1 (from building the loader, after its library is imported, to the last batch:
worker start-up and tracing included) and of epochs 2-3. It also prints per-image
decode and resize CPU times of seqpipe's kernels against Pillow's and scikit-image's.
Peers that are not installed are skipped (see benchmarks/requirements.txt). Targets, each
printed as met or not met (`_common.target_line`): seqpipe's steady state at least 1.0x
tf.data ``num_parallel_calls=2``, its epoch 1 at least 0.8x, and at least 2x PyTorch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, target_line  # noqa: E402

SIZE = (224, 224)
BATCH = 64
PARALLELISM = 2
CLASSES = 10
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
LOADERS = {
    "tf.data, num_parallel_calls=2": "tf2",
    "tf.data, AUTOTUNE": "tf-autotune",
    "keras image_dataset_from_directory": "keras",
    "PyTorch DataLoader + PIL, 2 workers": "torch",
    "serial PIL loop": "serial",
    "seqpipe ImageFiles -> OrderedEnqueuer, 2 processes": "seqpipe",
    "seqpipe ImageFiles(anti_aliasing=False), tf.data's quality, 2 processes": "seqpipe-tfq",
}
QUALITY = {
    "tf2": "decode_jpeg defaults, bilinear without anti-aliasing",
    "tf-autotune": "decode_jpeg defaults, bilinear without anti-aliasing",
    "keras": "decode_image defaults, bilinear without anti-aliasing",
    "torch": "PIL, bilinear anti-aliased",
    "serial": "PIL, bilinear anti-aliased",
    "seqpipe": "OpenCV (libjpeg-turbo, DCT scaling), Gaussian anti-aliased bilinear",
    "seqpipe-tfq": "OpenCV (libjpeg-turbo, DCT scaling), bilinear without anti-aliasing",
}


def build_folder(cache: str, n: int) -> str:
    """Writes ``n`` photo-like JPEGs into ``cache/n<n>/<class>/``, once; returns the root."""
    root = os.path.join(cache, f"n{n}")
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    import skimage.data
    from PIL import Image

    photos = [Image.fromarray(getattr(skimage.data, name)()) for name in PHOTOS]
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = os.path.join(root, f"class_{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        photo = photos[int(rng.integers(len(photos)))]
        height, width = (int(s) for s in rng.integers(350, 500, 2))
        # Scale the photograph so that the crop fits, with a random zoom on top.
        scale = max(height / photo.height, width / photo.width) * rng.uniform(1.0, 1.6)
        big = photo.resize(
            (int(np.ceil(photo.width * scale)), int(np.ceil(photo.height * scale))),
            Image.Resampling.BICUBIC,
        )
        top = int(rng.integers(big.height - height + 1))
        left = int(rng.integers(big.width - width + 1))
        crop = big.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    open(done, "w").close()
    return root


def _pil_load(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize(SIZE[::-1], Image.Resampling.BILINEAR))


def _paths(root: str) -> list[str]:
    return sorted(
        os.path.join(dirpath, f)
        for dirpath, _, files in os.walk(root)
        for f in files
        if f.endswith(".jpg")
    )


def _tf_dataset(root: str, parallel_calls):
    import tensorflow as tf

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.cast(tf.round(tf.image.resize(image, SIZE)), tf.uint8)

    ds = tf.data.Dataset.from_tensor_slices(_paths(root))
    ds = ds.map(load, num_parallel_calls=parallel_calls).batch(BATCH)
    return ds.prefetch(tf.data.AUTOTUNE if parallel_calls == tf.data.AUTOTUNE else 1)


class _TorchImages:
    """A map-style PyTorch dataset of PIL-loaded images."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        return torch.from_numpy(_pil_load(self.paths[i]).copy())


def _prepare(loader: str):
    """Imports the loader's library before the clock starts."""
    if loader.startswith("tf") or loader == "keras":
        import tensorflow as tf

        tf.constant(0)  # initialise the runtime
    elif loader == "torch":
        import torch.utils.data  # noqa: F401
    elif loader.startswith("seqpipe"):
        # The names the loader uses: the packages load their modules on first use.
        from seqpipe.parallel import OrderedEnqueuer  # noqa: F401
        from seqpipe.pipeline import Pipeline  # noqa: F401
        from seqpipe.sources import ImageFiles  # noqa: F401
    else:
        import PIL.Image  # noqa: F401


def _epochs(loader: str, root: str, epochs: int):
    """Yields one iterable of batches per epoch; cleans up after the last."""
    if loader in ("tf2", "tf-autotune"):
        import tensorflow as tf

        calls = PARALLELISM if loader == "tf2" else tf.data.AUTOTUNE
        ds = _tf_dataset(root, calls)
        for _ in range(epochs):
            yield ds.as_numpy_iterator()
    elif loader == "keras":
        import keras

        ds = keras.utils.image_dataset_from_directory(
            root, image_size=SIZE, batch_size=BATCH, shuffle=False, verbose=False
        )
        for _ in range(epochs):
            yield ds.as_numpy_iterator()
    elif loader == "torch":
        from torch.utils.data import DataLoader

        data = DataLoader(
            _TorchImages(_paths(root)),
            batch_size=BATCH,
            num_workers=PARALLELISM,
            persistent_workers=True,
        )
        for _ in range(epochs):
            yield iter(data)
    elif loader == "serial":
        paths = _paths(root)
        for _ in range(epochs):
            yield (
                np.stack([_pil_load(p) for p in paths[i : i + BATCH]])
                for i in range(0, len(paths), BATCH)
            )
    elif loader.startswith("seqpipe"):
        from seqpipe.parallel import OrderedEnqueuer
        from seqpipe.pipeline import Pipeline
        from seqpipe.sources import ImageFiles

        smooth = loader != "seqpipe-tfq"
        images, labels, _ = ImageFiles.from_directory(root, SIZE, anti_aliasing=smooth)
        seq = Pipeline((images, labels), batch_size=BATCH)
        enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True)
        enqueuer.start(workers=PARALLELISM, max_queue_size=10)
        for _ in range(epochs):
            yield enqueuer.iter_epoch()
        enqueuer.stop()


def run_cell(loader: str, root: str, epochs: int) -> dict:
    """One loader in this (fresh) process: seconds per epoch and images seen."""
    _prepare(loader)
    times, counts = [], []
    start = time.perf_counter()
    for batches in _epochs(loader, root, epochs):
        count = 0
        for batch in batches:
            x = batch[0] if isinstance(batch, tuple | list) else batch
            assert tuple(x.shape[1:]) == (*SIZE, 3), x.shape
            count += len(x)
        times.append(time.perf_counter() - start)
        counts.append(count)
        start = time.perf_counter()
    return {"epoch_times": times, "images": counts}


def _spawn_cell(loader: str, root: str, epochs: int) -> dict | None:
    cmd = [sys.executable, __file__, "--cell", loader, root, str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(f"cell {loader} failed:\n{proc.stderr[-3000:]}\n")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _installed(loader: str) -> bool:
    module = {"tf2": "tensorflow", "tf-autotune": "tensorflow", "keras": "keras"}.get(loader)
    module = module or {"torch": "torch"}.get(loader)
    return module is None or importlib.util.find_spec(module) is not None


def _cpu_ms(fn, items, repeats: int = 3) -> float:
    """Least CPU time of ``repeats`` passes over ``items``, in ms per item.

    CPU time, not wall time: on a shared machine it is what the kernel costs.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e3


def kernel_times(root: str, count: int = 100) -> list[list[str]]:
    """Per-image serial decode and resize CPU times: seqpipe, Pillow and scikit-image."""
    import io

    import skimage.io
    import skimage.transform
    from PIL import Image

    from seqpipe.sources._decode import decode_image
    from seqpipe.transforms.resize_kernels import resize_image

    paths = _paths(root)[:count]
    blobs = []
    for path in paths:
        with open(path, "rb") as file:
            blobs.append((file.read(), path))
    decoded = [decode_image(data, name) for data, name in blobs]
    bilinear = Image.Resampling.BILINEAR

    def pil_decode(blob):
        return np.asarray(Image.open(io.BytesIO(blob[0])).convert("RGB"))

    def pil_both(blob):
        image = Image.open(io.BytesIO(blob[0]))
        image.draft("RGB", SIZE[::-1])
        return np.asarray(image.convert("RGB").resize(SIZE[::-1], bilinear))

    def sk_resize(array):
        return skimage.transform.resize(array, SIZE, preserve_range=True, anti_aliasing=True)

    def sk_both(blob):
        return sk_resize(skimage.io.imread(io.BytesIO(blob[0])))

    few = blobs[: count // 4]  # scikit-image's resize is slow
    table = [
        [
            "decode (full size)",
            _cpu_ms(lambda b: decode_image(*b), blobs),
            _cpu_ms(pil_decode, blobs),
            _cpu_ms(lambda b: skimage.io.imread(io.BytesIO(b[0])), blobs),
        ],
        [
            "resize to 224x224, anti-aliased",
            _cpu_ms(lambda a: resize_image(a, SIZE), decoded),
            _cpu_ms(lambda a: np.asarray(Image.fromarray(a).resize(SIZE[::-1], bilinear)), decoded),
            _cpu_ms(sk_resize, decoded[: len(few)], 1),
        ],
        [
            "decode + resize (with DCT scaling where it applies)",
            _cpu_ms(lambda b: decode_image(*b, SIZE), blobs),
            _cpu_ms(pil_both, blobs),
            _cpu_ms(sk_both, few, 1),
        ],
    ]
    return [[name, *(f"{ms:.2f}" for ms in row)] for name, *row in table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", nargs=3, metavar=("LOADER", "ROOT", "EPOCHS"))
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default="/tmp/seqpipe-bench-images")
    parser.add_argument("--loaders", default=",".join(LOADERS.values()))
    args = parser.parse_args()
    if args.cell:
        loader, root, epochs = args.cell
        print(json.dumps(run_cell(loader, root, int(epochs))))
        return

    root = build_folder(args.cache, args.n)
    megabytes = sum(os.path.getsize(p) for p in _paths(root)) / 1e6
    wanted = args.loaders.split(",")
    results = {}
    for name, loader in LOADERS.items():
        if loader not in wanted or not _installed(loader):
            continue
        runs = [r for r in (_spawn_cell(loader, root, 3) for _ in range(args.repeats)) if r]
        if runs:
            assert all(c == args.n for r in runs for c in r["images"]), (loader, runs)
            results[loader] = (name, runs)
            print(json.dumps({loader: runs}), file=sys.stderr)

    def rate(runs, steady: bool) -> float:
        return statistics.median(
            args.n / (np.mean(r["epoch_times"][1:]) if steady else r["epoch_times"][0])
            for r in runs
        )

    base = results.get("tf2")
    rows = []
    for loader, (name, runs) in results.items():
        steady, first = rate(runs, True), rate(runs, False)
        ratios = (
            (f"{steady / rate(base[1], True):.2f}", f"{first / rate(base[1], False):.2f}")
            if base
            else ("", "")
        )
        rows.append([name, f"{steady:,.0f}", f"{first:,.0f}", *ratios, QUALITY[loader]])
    print(
        f"{args.n} JPEGs ({megabytes:.0f} MB, sides 350-499 px, quality 90) -> "
        f"{SIZE[0]}x{SIZE[1]}x3, batches of {BATCH}, parallelism {PARALLELISM}; medians of "
        f"{args.repeats} fresh processes"
    )
    print(
        markdown_table(
            [
                "loader",
                "images/s, epochs 2-3",
                "images/s, epoch 1",
                "vs tf.data npc=2 (2-3)",
                "vs tf.data npc=2 (epoch 1)",
                "quality",
            ],
            rows,
        )
    )
    ours, torch = results.get("seqpipe"), results.get("torch")
    if ours and base:
        checks = [
            ("steady vs tf.data npc=2", rate(ours[1], True) / rate(base[1], True), 1.0),
            ("epoch 1 vs tf.data npc=2", rate(ours[1], False) / rate(base[1], False), 0.8),
        ]
        if torch:
            checks.append(("steady vs PyTorch", rate(ours[1], True) / rate(torch[1], True), 2.0))
        for what, ratio, target in checks:
            print(target_line(f"seqpipe {what}", ratio, ">=", target))
    print("\nCPU ms per image, serial, least of 3 passes over 100 files:")
    print(
        markdown_table(
            ["step", "seqpipe (OpenCV)", "Pillow", "scikit-image"],
            kernel_times(root),
        )
    )


if __name__ == "__main__":
    main()
