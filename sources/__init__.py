"""Array-like sources over samples: HDF5, Parquet, image files, plain arrays.

Each source has ``len`` and int/slice/index-array ``__getitem__``; ``source | t`` runs
``t`` on every read. Depends only on numpy and the storage libraries.
"""

from ._base import ArraySource, TransformedSource
from .archives import UnsafeArchiveError, extract_archive
from .download import get_file, hash_file
from .hdf5 import HDF5Matrix
from .images import ImageFiles
from .parquet import ParquetSource

__all__ = [
    "ArraySource",
    "HDF5Matrix",
    "ImageFiles",
    "ParquetSource",
    "TransformedSource",
    "UnsafeArchiveError",
    "extract_archive",
    "get_file",
    "hash_file",
]
