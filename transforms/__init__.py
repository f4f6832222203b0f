"""Composable batch transforms: ``pipeline | Resize(...) | Normalize(on=0)``.

Random augmentations are `RandomTransform` subclasses: each sample's numbers are a pure
function of the seed, the epoch, the sample id and the transform's position in the
chain (NOTE [ Augmentation keys ] in ``transforms/randomness.py``).

Layer 1 of 4 (see ``seqpipe``): imports only `seqpipe._core`, numpy, OpenCV and
scikit-image (the last two when first used).
"""

from .base import Lambda, RandomTransform, Transform, as_transform
from .categorical import ToCategorical, to_categorical
from .color import RandomBrightness, RandomContrast
from .crop import RandomCrop, RandomResizedCrop
from .flip import RandomFlip
from .geometry import RandomRotation, RandomTranslation, RandomZoom
from .mix import CutMix, MixUp
from .normalize import Normalize, normalize
from .randomness import SampleRandom, batch_random, random_for, sample_random
from .resize import Resize, resize
from .transformed_source import ArraySource, TransformedSource

# The built-in random augmentations, registered for configs by class name.
AUGMENTATIONS = (
    RandomFlip,
    RandomCrop,
    RandomResizedCrop,
    RandomRotation,
    RandomZoom,
    RandomTranslation,
    RandomBrightness,
    RandomContrast,
    MixUp,
    CutMix,
)

__all__ = [
    "AUGMENTATIONS",
    "ArraySource",
    "CutMix",
    "Lambda",
    "MixUp",
    "Normalize",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomTransform",
    "RandomTranslation",
    "RandomZoom",
    "Resize",
    "SampleRandom",
    "ToCategorical",
    "Transform",
    "TransformedSource",
    "as_transform",
    "batch_random",
    "normalize",
    "random_for",
    "resize",
    "sample_random",
    "to_categorical",
]
