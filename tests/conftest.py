"""Shared fixtures: small real HDF5 files."""

import h5py
import numpy as np
import pytest


@pytest.fixture
def h5_file(tmp_path):
    """An HDF5 file with ``images`` (50, 8, 8, 3) uint8 rows equal to their row id, and
    ``labels`` (50,) = id % 5; chunked like a real image file."""
    path = tmp_path / "data.h5"
    ids = np.arange(50)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "images",
            data=np.broadcast_to(ids[:, None, None, None], (50, 8, 8, 3)).astype("uint8"),
            chunks=(4, 8, 8, 3),
        )
        f.create_dataset("labels", data=ids % 5)
        f.create_dataset("group/ids", data=ids)
    return path
