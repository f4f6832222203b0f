"""Test data shared by the framework checks, importable without any framework."""

import numpy as np


def make_data(n):
    """A learnable linear problem; column 4 of x holds the sample id (unused by models)."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 4)).astype("float32")
    x = np.concatenate([features, np.arange(n, dtype="float32")[:, None]], axis=1)
    y = (features @ np.array([1.0, -2.0, 3.0, 0.5], "float32"))[:, None]
    return x, y
