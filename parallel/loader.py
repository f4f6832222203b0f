"""`EpochLoader`: a pipeline as a re-iterable loader, one epoch per ``iter()``, resumable.

The framework loaders (`TorchLoader` of ``seq.as_torch()``, `JaxIterator` of
``seq.as_jax()``) are this class with a conversion of each batch to the framework's
arrays. Batches come from one `EnqueuerFeed`, whose workers start at the first batch and
stay across epochs.

NOTE [ Loader state counts what the loop received ]
A loader converts, pins or moves batches ahead of the loop (``prefetch_to``), so the
enqueuer has delivered more batches than the loop has seen. A checkpoint taken from the
enqueuer would then skip the batches waiting in between (torchdata's
``StatefulDataLoader`` loses prefetched data that way, meta-pytorch/data#1437). So every
batch travels with the enqueuer's `state` taken right after it was delivered, and
`state_dict` returns the state of the last batch handed to the loop. The state is the
enqueuer's own, used as an opaque dict: it resumes wherever the enqueuer's does (another
process, worker count or shard count).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from ..pipeline import Pipeline
from .enqueuer import OrderedEnqueuer
from .feed import EnqueuerFeed


def shard_for(seq: Any, shard: Any, auto: Callable[[], tuple[int, int] | None]) -> Any:
    """Returns the part of ``seq`` that this process reads.

    Args:
        seq: the `Sequence` or `Pipeline`.
        shard: ``None`` (all of it), ``"auto"`` (by ``auto()``: the framework's
            ``(number of processes, this process)``, or ``None`` when it runs alone) or
            ``(num_shards, index)``.
        auto: called for ``"auto"``.

    Returns:
        ``seq`` itself, or ``seq.shard(num_shards, index)`` (a batch-level `Sequence`
        is wrapped in a `Pipeline` first).

    Raises:
        ValueError: for another ``shard``, or a pipeline already sharded otherwise.

    Example:
        >>> import numpy as np
        >>> shard_for(Pipeline(np.arange(4), batch_size=2), (2, 1), lambda: None)[0]
        (array([2, 3]), array([1., 1.], dtype=float32))
    """
    if shard is None:
        return seq
    if shard == "auto":
        shard = auto()
        if shard is None or shard[0] == 1:
            return seq
    if not (isinstance(shard, tuple | list) and len(shard) == 2):
        raise ValueError(
            f"shard must be None, 'auto' or (num_shards, index). Received: shard={shard!r}"
        )
    num_shards, index = (int(v) for v in shard)
    pipeline = seq if isinstance(seq, Pipeline) else Pipeline(seq)
    if pipeline.sharded:
        plan = pipeline.plan
        if (plan.num_shards, plan.shard_index) == (num_shards, index):
            return pipeline
        raise ValueError(
            f"the pipeline is already shard {plan.shard_index} of {plan.num_shards}; "
            f"shard={shard!r} asks for shard {index} of {num_shards}: pass the unsharded "
            f"pipeline, or shard=None"
        )
    return pipeline.shard(num_shards, index)


def prefetch_to(items: Iterator[Any], move: Callable[[Any], Any]) -> Iterator[Any]:
    """Applies ``move`` to each item one item ahead: item ``k + 1`` is moved (started
    on a copy stream, say) before item ``k`` is yielded.

    Example:
        >>> list(prefetch_to(iter([1, 2, 3]), lambda v: 10 * v))
        [10, 20, 30]
    """
    ahead = None
    for item in items:
        moved = move(item)
        if ahead is not None:
            yield ahead
        ahead = moved
    if ahead is not None:
        yield ahead


class EpochLoader:
    """Batches of a pipeline, one epoch per ``iter()``, with a resumable state.

    Args:
        seq: the `Sequence` or `Pipeline` (already sharded for this process).
        workers: enqueuer workers (0: computed in the loop's thread).
        use_multiprocessing: worker processes instead of threads.
        max_queue_size: batches the workers compute ahead.

    Example:
        >>> import numpy as np
        >>> loader = EpochLoader(Pipeline(np.arange(5), batch_size=2), 0, False, 2)
        >>> len(loader), [b.tolist() for b in loader]
        (3, [[0, 1], [2, 3], [4]])
        >>> loader.close()
    """

    def __init__(
        self, seq: Any, workers: int, use_multiprocessing: bool, max_queue_size: int
    ) -> None:
        self.sequence = seq
        self._options = (workers, use_multiprocessing, max_queue_size)
        self._feed = EnqueuerFeed(seq, workers, use_multiprocessing, max_queue_size)
        self._state: dict[str, Any] | None = None  # after the last batch handed out
        self._resumed = False  # load_state_dict: the next iter() continues its epoch
        self._iterations = itertools.count(1)
        self._current = 0  # the newest iterator's number; older ones stop

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return self._feed.epoch

    def __iter__(self) -> Iterator[Any]:
        feed = self._feed
        if feed.position and not self._resumed:
            # The last iteration stopped inside its epoch: that epoch ends here.
            feed.finish_epoch()
            self._state = None
        self._resumed = False
        self._current = next(self._iterations)
        return self._handed_out(self._current)

    def _handed_out(self, number: int) -> Iterator[Any]:
        for batch, state in self.prefetch(self._delivered(number)):
            self._state = state
            yield batch

    def _delivered(self, number: int) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(converted batch, state after it)`` for the rest of the epoch."""
        feed = self._feed
        for _ in range(feed.position, len(self.sequence)):
            if number != self._current:
                raise RuntimeError(
                    "this iterator was replaced by a newer iter() of the loader, which "
                    "started the next epoch"
                )
            batch = feed.next_batch()
            if feed.position == len(self.sequence):
                feed.finish_epoch()  # the state after the last batch is the next epoch's
            yield self.convert(batch), feed.state()

    def convert(self, batch: Any) -> Any:
        """Turns a numpy batch into the framework's arrays (subclasses override)."""
        return batch

    def prefetch(
        self, items: Iterator[tuple[Any, dict[str, Any]]]
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Stages ``(batch, state)`` items ahead of the loop (subclasses override)."""
        return items

    def state_dict(self) -> dict[str, Any]:
        """Where the loop is: after the last batch it received (JSON-able).

        See NOTE [ Loader state counts what the loop received ] in
        ``parallel/loader.py``.
        """
        return {"enqueuer": self._state if self._state is not None else self._feed.state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continues from `state_dict`'s output: the next ``iter()`` goes on with the
        batch after the last one received when it was taken.

        Raises:
            ValueError: if the state belongs to another pipeline or settings.
        """
        workers, use_multiprocessing, max_queue_size = self._options
        state = state_dict["enqueuer"]
        OrderedEnqueuer(self.sequence, use_multiprocessing, initial_state=state)  # checks it
        self._feed.stop()
        self._feed = EnqueuerFeed(
            self.sequence, workers, use_multiprocessing, max_queue_size, initial_state=state
        )
        self._state = state
        self._resumed = True

    def close(self) -> None:
        """Stops the workers now (they also stop when the loader is collected)."""
        self._feed.stop()

    def __enter__(self) -> EpochLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
