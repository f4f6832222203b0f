"""seqpipe core: `Sequence`, `Pipeline`, the epoch plan, custom objects, configs.

Importing this package never imports TensorFlow.
"""

from sources._lazy import lazy_exports

from .custom_objects import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    register,
)
from .pipeline import Pipeline
from .plan import BatchPlan, EpochPlan
from .plot import plot_model
from .sequence import Sequence
from .summary import print_summary

# `write_hdf5` pulls in h5py and the sources; every enqueuer worker imports this
# package, so the cache module loads only when it is asked for.
__getattr__, __dir__ = lazy_exports(__name__, {"write_hdf5": ".cache"})

__all__ = [
    "BatchPlan",
    "CustomObjectScope",
    "EpochPlan",
    "Pipeline",
    "Sequence",
    "custom_object_scope",
    "get_custom_objects",
    "plot_model",
    "print_summary",
    "register",
    "write_hdf5",
]
