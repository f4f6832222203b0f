"""Composable batch transforms: ``pipeline | Resize(...) | Normalize(on=0)``.

Depends only on numpy and scikit-image.
"""

from .base import Lambda, Transform, as_transform
from .categorical import ToCategorical, to_categorical
from .normalize import Normalize, normalize
from .resize import Resize, resize

__all__ = [
    "Lambda",
    "Normalize",
    "Resize",
    "ToCategorical",
    "Transform",
    "as_transform",
    "normalize",
    "resize",
    "to_categorical",
]
