"""Array-like sources over samples: HDF5, Parquet, image files, TFRecord files, WebDataset
tar shards, plain arrays.

Each source has ``len`` and int/slice/index-array ``__getitem__``; ``source | t`` runs
``t`` on every read. Layer 2 of 4 (see ``seqpipe``): imports `seqpipe.transforms` (the
``|`` operator and the resize kernels images are decoded with), `seqpipe._core`, and
the storage libraries (h5py, pyarrow, OpenCV, Pillow), each on first use.
"""

from .._core.lazy import lazy_exports
from ..transforms import ArraySource, TransformedSource

# Each public name's module, imported on first use: a worker process unpickling an
# `ImageFiles` should not pay for h5py, nor one reading HDF5 for pyarrow (a third of a
# second at every worker start).
_LAZY = {
    "HDF5Matrix": ".hdf5",
    "ImageFiles": ".images",
    "NestedSource": ".nested",
    "CorruptRecordError": ".tfrecord",
    "ParquetSource": ".parquet",
    "TFRecordSource": ".tfrecord",
    "WebDatasetSource": ".webdataset",
    "UnsafeArchiveError": ".archives",
    "extract_archive": ".archives",
    "get_file": ".download",
    "hash_file": ".download",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "ArraySource",
    "CorruptRecordError",
    "HDF5Matrix",
    "ImageFiles",
    "NestedSource",
    "ParquetSource",
    "TFRecordSource",
    "TransformedSource",
    "UnsafeArchiveError",
    "WebDatasetSource",
    "extract_archive",
    "get_file",
    "hash_file",
]
