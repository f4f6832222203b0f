"""seqpipe core: `Sequence`, `Pipeline`, the epoch plan.

Importing this package never imports TensorFlow.
"""

from .pipeline import Pipeline
from .plan import BatchPlan, EpochPlan
from .sequence import Sequence

__all__ = ["BatchPlan", "EpochPlan", "Pipeline", "Sequence"]
