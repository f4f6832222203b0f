"""Running pipelines: the multiprocess `OrderedEnqueuer` and its machinery."""

from .enqueuer import OrderedEnqueuer
from .errors import RemoteTraceback, WorkerCrashed
from .shm import SharedArrayPool

__all__ = ["OrderedEnqueuer", "RemoteTraceback", "SharedArrayPool", "WorkerCrashed"]
