"""Optional frameworks (TensorFlow, PyTorch, JAX): imported by the code that uses them,
with an error that names the extra to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module`` for ``feature``, or says which seqpipe extra installs it.

    Args:
        module: the module to import (``"torch"``, ``"jax"``).
        extra: the seqpipe extra that installs it (``"torch"``, ``"jax"``).
        feature: what needs it, for the message (``"seq.as_torch()"``).

    Returns:
        The module.

    Raises:
        ImportError: naming ``feature`` and ``pip install 'seqpipe[extra]'``.

    Example:
        >>> require("json", "none", "this example").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{feature} needs {module}, which cannot be imported ({error}); "
            f"install it with: pip install 'seqpipe[{extra}]'"
        ) from error
