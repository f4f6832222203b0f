"""Running pipelines: the multiprocess `OrderedEnqueuer` (``workers="auto"``:
`AutoWorkers`), the framework adapters (`as_keras`, `as_tf_dataset`, `as_torch`,
`as_jax`), `MultiGPUTrainer`, `multi_gpu_model` and `profile` (TensorFlow, PyTorch, JAX
and matplotlib are imported when they are used, not when this package is).

Layer 4 of 4, the top (see ``seqpipe``): imports every layer below it.
"""

from .._core.lazy import lazy_exports

# The adapters provide seq.as_keras(), seq.as_tf_dataset(), seq.as_torch() and
# seq.as_jax() (seqpipe._core.hooks).
from .adapters import as_keras, as_tf_dataset
from .errors import BatchTimeout, RemoteTraceback, WorkerCrashed, WorkerStartFailed
from .jax_iterator import JaxIterator, as_jax
from .torch_loader import TorchLoader, as_torch

# Each public name's module, imported on first use: every enqueuer worker imports
# `parallel.worker`, hence this package, and should not pay for the enqueuer, the
# trainer and their imports (a tenth of a second at every worker start).
_LAZY = {
    "AutoWorkers": ".autotune",
    "InputMetrics": ".input_metrics",
    "MultiGPUTrainer": ".trainer",
    "OrderedEnqueuer": ".enqueuer",
    "ProfileReport": ".profile_report",
    "SharedArrayPool": ".shm",
    "multi_gpu_model": ".multi_gpu",
    "multi_worker_strategy": ".strategy",
    "profile": ".profile",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "AutoWorkers",
    "BatchTimeout",
    "InputMetrics",
    "JaxIterator",
    "MultiGPUTrainer",
    "OrderedEnqueuer",
    "ProfileReport",
    "RemoteTraceback",
    "SharedArrayPool",
    "TorchLoader",
    "WorkerCrashed",
    "WorkerStartFailed",
    "as_jax",
    "as_keras",
    "as_tf_dataset",
    "as_torch",
    "multi_gpu_model",
    "multi_worker_strategy",
    "profile",
]
