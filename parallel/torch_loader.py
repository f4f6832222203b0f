"""``seq.as_torch()``: a drop-in for ``torch.utils.data.DataLoader`` over a pipeline
(PyTorch is imported when a loader is made, not when this module is).

NOTE [ When as_torch copies a batch ]
A batch's arrays arrive from the worker processes as views of a shared-memory segment
(NOTE [ When a segment is reused ] in ``parallel/shm.py``). ``torch.from_numpy`` makes
each tensor share that memory: no copy, and the tensor keeps its array, so the segment
is reused only when no tensor of the batch is alive (keep a batch as long as you like).
A copy is made only:

- with ``pin_memory=True``: once, into page-locked memory (``Tensor.pin_memory``), so
  that a CUDA transfer can overlap compute;
- with ``device=`` a CUDA device: the transfer itself, one batch ahead on a copy stream;
- for an array that ``torch.from_numpy`` cannot share: a read-only array (torch
  tensors are writable), a non-native byte order, or negative strides;
- for Python and numpy scalars (``torch.as_tensor``).

Strings, bytes and ``None`` are passed through as they are, as the DataLoader's
``default_collate`` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .._core.hooks import provide
from .._core.optional import require
from .loader import EpochLoader, prefetch_to, shard_for


def _torch_world() -> tuple[int, int] | None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return None


def to_torch(value: Any) -> Any:
    """A batch with its arrays as torch tensors, sharing their memory where possible.

    Tuples, lists and dicts keep their structure; see NOTE [ When as_torch copies a
    batch ] in ``parallel/torch_loader.py``.

    Raises:
        TypeError: for an array whose dtype torch has no tensor for.

    Example:
        >>> to_torch((np.arange(3), {"w": np.float32(2.0)}))  # doctest: +SKIP
        (tensor([0, 1, 2]), {'w': tensor(2.)})
    """
    import torch

    if isinstance(value, np.ndarray):
        array = value
        if not array.flags.writeable or not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="), copy=True)
        try:
            return torch.from_numpy(array)
        except ValueError:  # negative strides
            return torch.from_numpy(array.copy())
        except TypeError as error:
            raise TypeError(
                f"as_torch cannot make a tensor of a {array.dtype} array of shape "
                f"{array.shape}: {error}"
            ) from None
    if isinstance(value, Mapping):
        return type(value)({k: to_torch(v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return type(value)(to_torch(v) for v in value)
    if isinstance(value, np.generic | int | float | complex) and not isinstance(
        value, np.str_ | np.bytes_
    ):
        return torch.as_tensor(value)
    return value


def _map_tensors(fn: Any, value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, Mapping):
        return type(value)({k: _map_tensors(fn, v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return type(value)(_map_tensors(fn, v) for v in value)
    return value


class TorchLoader(EpochLoader):
    """A drop-in for ``torch.utils.data.DataLoader`` over ``seq``, fed by our enqueuer.

    Iterate it like a DataLoader: each ``iter()`` is one epoch, every batch once, in the
    pipeline's order, as torch tensors in the pipeline's structure (tuple, dict).
    ``len()`` is the number of batches. Batching and shuffling belong to the pipeline
    (``Pipeline(..., batch_size=64, shuffle=True, seed=0)``: a new order every epoch, a
    pure function of ``(seed, epoch)``), so there is no ``batch_size``, ``shuffle``,
    ``sampler`` or ``collate_fn``. Differences from the DataLoader, on purpose:

    - Worker processes start once and stay across epochs (``persistent_workers``), and
      batches cross from them through shared memory without a copy (see NOTE [ When
      as_torch copies a batch ] in ``parallel/torch_loader.py``).
    - Random transforms draw from ``(seed, epoch, batch)``, never from a worker's RNG:
      the same batches with any number of workers.
    - An ``iter()`` started while the previous one stopped inside its epoch ends that
      epoch (its remaining batches are not delivered) and starts the next, as the
      DataLoader does; to continue an epoch, use `state_dict` / `load_state_dict`.
    - ``state_dict()`` counts the batches the loop received, not those prefetched.

    Args:
        seq: the `Sequence` or `Pipeline`.
        workers: enqueuer workers (0: batches are computed in the loop's thread).
        use_multiprocessing: worker processes (True, the DataLoader's way) or threads.
        pin_memory: copy each batch into page-locked memory (needs CUDA; without it a
            warning says it is ignored).
        device: move each batch there, one batch ahead of the loop, on a CUDA copy
            stream (``non_blocking``; with ``pin_memory=True`` the copy overlaps
            compute). ``"cpu"``, or ``None``, is a no-op.
        prefetch: batches each worker computes ahead (the DataLoader's
            ``prefetch_factor``): ``prefetch * workers`` in all.
        shard: ``None`` (every sample in this process), ``"auto"`` (with
            ``torch.distributed`` initialised, shard ``rank`` of ``world_size``) or
            ``(num_shards, index)``. A sharded pipeline's shards have equal batch counts
            and are evened out with weight-0 padding rows, never repeated samples, so
            batches carry ``sample_weight``: ``(x, y)`` becomes ``(x, y, w)``, a single
            array ``(x, w)``, a dict gains ``"sample_weight"`` (weight your loss).

    Attributes:
        dataset: the (sharded) pipeline read.
        batch_size: its batch size (``None`` for a wrapped batch-level `Sequence`).
        device: the ``torch.device`` batches are moved to, or ``None``.
        pin_memory: whether batches are copied into page-locked memory.

    Raises:
        ImportError: if PyTorch is not installed (``pip install 'seqpipe[torch]'``).
        ValueError: for a bad ``prefetch`` or ``shard``.

    Example:
        >>> loader = seq.as_torch(workers=2, shard="auto")  # doctest: +SKIP
        >>> for epoch in range(10):                          # doctest: +SKIP
        ...     for x, y, w in loader:
        ...         loss = (w * loss_fn(model(x), y)).sum() / w.sum()
        ...     checkpoint = loader.state_dict()
    """

    def __init__(
        self,
        seq: Any,
        workers: int = 0,
        use_multiprocessing: bool = True,
        pin_memory: bool = False,
        device: Any = None,
        prefetch: int = 2,
        shard: Any = None,
    ) -> None:
        torch = require("torch", "torch", "seq.as_torch()")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1. Received: prefetch={prefetch!r}")
        world = _torch_world()
        if shard is None and world is not None and world[0] > 1:
            warnings.warn(
                f"torch.distributed runs {world[0]} processes and as_torch(shard=None) "
                f"gives each of them every sample; pass shard='auto' to read one shard "
                f"per rank, each sample once per epoch",
                stacklevel=3,
            )
        seq = shard_for(seq, shard, _torch_world)
        super().__init__(seq, workers, use_multiprocessing, prefetch * max(1, workers))
        self.dataset = seq
        self.batch_size = getattr(seq, "batch_size", None)
        self.device = None if device is None else torch.device(device)
        cuda = torch.cuda.is_available()
        if pin_memory and not cuda:
            warnings.warn(
                "as_torch(pin_memory=True) but no CUDA device is available: batches are not pinned",
                stacklevel=3,
            )
        self.pin_memory = bool(pin_memory and cuda)
        on_cuda = self.device is not None and self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if on_cuda else None

    def convert(self, batch: Any) -> Any:
        batch = to_torch(batch)
        if self.pin_memory:
            batch = _map_tensors(lambda t: t.pin_memory(), batch)
        if self.device is not None and self._stream is None and self.device.type != "cpu":
            batch = _map_tensors(lambda t: t.to(self.device), batch)
        return batch

    def prefetch(
        self, items: Iterator[tuple[Any, dict[str, Any]]]
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        if self._stream is None:
            return items  # on the CPU, moving is a no-op
        return self._on_stream(items)

    def _on_stream(
        self, items: Iterator[tuple[Any, dict[str, Any]]]
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        import torch

        stream, device = self._stream, self.device

        def start_copy(item: tuple[Any, dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
            batch, state = item
            with torch.cuda.stream(stream):
                batch = _map_tensors(lambda t: t.to(device, non_blocking=True), batch)
            return batch, state

        for batch, state in prefetch_to(items, start_copy):
            current = torch.cuda.current_stream(device)
            current.wait_stream(stream)
            # The loop's stream uses memory the copy stream allocated: keep it until then.
            _map_tensors(lambda t, s=current: t.record_stream(s), batch)
            yield batch, state


# `seq.as_torch(...)` and `parallel.as_torch(seq, ...)` build a `TorchLoader`.
as_torch = TorchLoader

provide("Sequence.as_torch", as_torch)
