"""seqpipe core: `Sequence`, `Pipeline`, the epoch plan, custom objects, configs,
summaries and plots, and the decode-once caches (`write_hdf5`, `write_webdataset`) on top
of them.

Layer 3 of 4 (see ``seqpipe``): imports `seqpipe.sources`, `seqpipe.transforms` and
`seqpipe._core`, never `seqpipe.parallel`; ``seq.as_keras()`` and
``seq.as_tf_dataset()`` are thin methods whose bodies `seqpipe.parallel` provides.
Importing this package never imports TensorFlow.
"""

from .cache import write_hdf5
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
from .webdataset_writer import write_webdataset

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
    "write_webdataset",
]
