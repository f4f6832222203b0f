"""Reading rows of a plain HDF5 dataset with ``preadv``, past the HDF5 library.

NOTE [ Raw row reads ]
When a dataset has no filters (no compression, shuffle or checksum), a native numeric
dtype, and either a contiguous layout or chunks that span whole rows, its rows are
plain bytes at known file offsets: one offset for a contiguous dataset, one per chunk
otherwise (asked of HDF5 once per chunk and cached). Reading them with ``os.preadv``
straight into the caller's array skips HDF5's selection and type-conversion machinery:
measured about 1.5x faster than h5py's own reads on 3 MB batches of images, and it
fills shared memory in place for the enqueuer. Anything else, and any chunk HDF5 has
not allocated, goes through h5py as before. The file must not be written meanwhile
(as for any reader that caches offsets).
"""

from __future__ import annotations

import os
import weakref

import h5py
import numpy as np


class RawRows:
    """Where the rows of one dataset lie in its file, and a descriptor to read them.

    Use `RawRows.open`, which returns ``None`` for datasets this cannot read.
    """

    def __init__(self, path: str, dset: h5py.Dataset, offset: int | None) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._dset = dset
        self._offset = offset  # contiguous layout; None for chunked
        self._chunk_rows = 0 if dset.chunks is None else dset.chunks[0]
        self._chunk_offsets: dict[int, int | None] = {}
        self.row_bytes = int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize

    @classmethod
    def open(cls, path: str, dset: h5py.Dataset) -> RawRows | None:
        """A reader for ``dset``, or ``None`` when its rows are not plain bytes."""
        dtype = dset.dtype
        if dtype.kind not in "biuf" or not dtype.isnative or dset.ndim == 0:
            return None
        plist = dset.id.get_create_plist()
        if plist.get_nfilters():
            return None
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            offset = dset.id.get_offset()
            return None if offset is None else cls(path, dset, offset)
        if layout == h5py.h5d.CHUNKED and tuple(dset.chunks[1:]) == tuple(dset.shape[1:]):
            return cls(path, dset, None)
        return None

    def _chunk_offset(self, chunk: int) -> int | None:
        if chunk not in self._chunk_offsets:
            coord = (chunk * self._chunk_rows,) + (0,) * (self._dset.ndim - 1)
            self._chunk_offsets[chunk] = self._dset.id.get_chunk_info_by_coord(coord).byte_offset
        return self._chunk_offsets[chunk]

    def _pieces(self, lo: int, hi: int) -> list[tuple[int, int]] | None:
        # (file offset, nbytes) of rows [lo, hi), in order; None if a chunk is missing.
        if self._offset is not None:
            return [(self._offset + lo * self.row_bytes, (hi - lo) * self.row_bytes)]
        pieces = []
        row = lo
        while row < hi:
            chunk, within = divmod(row, self._chunk_rows)
            offset = self._chunk_offset(chunk)
            if offset is None:
                return None
            rows = min(hi - row, self._chunk_rows - within)
            pieces.append((offset + within * self.row_bytes, rows * self.row_bytes))
            row += rows
        return pieces

    def read(self, lo: int, hi: int, target: memoryview) -> bool:
        """Reads rows ``[lo, hi)`` into ``target`` (bytes); ``False`` if it cannot.

        Raises:
            OSError: if the file ends early.
        """
        pieces = self._pieces(lo, hi)
        if pieces is None:
            return False
        position = 0
        for offset, nbytes in pieces:
            done = 0
            while done < nbytes:
                got = os.preadv(
                    self._fd, [target[position + done : position + nbytes]], offset + done
                )
                if got == 0:
                    raise OSError(f"{self._dset.file.filename} ends before byte {offset + nbytes}")
                done += got
            position += nbytes
        return True

    def close(self) -> None:
        """Closes the descriptor."""
        self._closer()
