"""Running pipelines: the multiprocess `OrderedEnqueuer`, `MultiGPUTrainer` and
`multi_gpu_model` (these two import TensorFlow when used, not when imported)."""

from .enqueuer import OrderedEnqueuer
from .errors import BatchTimeout, RemoteTraceback, WorkerCrashed
from .multi_gpu import multi_gpu_model
from .shm import SharedArrayPool
from .strategy import multi_worker_strategy
from .trainer import MultiGPUTrainer

__all__ = [
    "BatchTimeout",
    "MultiGPUTrainer",
    "OrderedEnqueuer",
    "RemoteTraceback",
    "SharedArrayPool",
    "WorkerCrashed",
    "multi_gpu_model",
    "multi_worker_strategy",
]
