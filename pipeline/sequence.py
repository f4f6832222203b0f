"""`Sequence`: the Keras-compatible base class for batch-level data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._core.hooks import provided


class Sequence:
    """Base object for fitting to a sequence of data, such as a dataset.

    Every ``Sequence`` implements ``__getitem__`` (batch ``index`` of the epoch) and
    ``__len__`` (batches per epoch); ``on_epoch_end`` runs between epochs. Iterating a
    sequence yields its batches in order. ``sequence | transform`` wraps it in a
    `Pipeline` and appends the transform.

    Example:
        >>> class Squares(Sequence):
        ...     def __len__(self):
        ...         return 3
        ...     def __getitem__(self, index):
        ...         return index * index
        >>> list(Squares())
        [0, 1, 4]
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called once at the end of every epoch; override to modify the data."""

    def __iter__(self) -> Iterator[Any]:
        for index in range(len(self)):
            yield self[index]

    def as_tf_dataset(
        self, workers: int = 0, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> Any:
        """A re-iterable ``tf.data.Dataset`` of this sequence, one epoch per iteration,
        fed by an `OrderedEnqueuer` (see `seqpipe.parallel.as_tf_dataset`)."""
        return provided("Sequence.as_tf_dataset")(
            self, workers, use_multiprocessing, max_queue_size
        )

    def as_keras(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> Any:
        """A ``keras.utils.PyDataset`` of this sequence, for ``model.fit`` (see
        `seqpipe.parallel.as_keras`)."""
        return provided("Sequence.as_keras")(self, workers, use_multiprocessing, max_queue_size)

    def as_torch(
        self,
        workers: int = 0,
        use_multiprocessing: bool = True,
        pin_memory: bool = False,
        device: Any = None,
        prefetch: int = 2,
        shard: Any = None,
    ) -> Any:
        """A drop-in for ``torch.utils.data.DataLoader`` over this sequence, fed by an
        `OrderedEnqueuer` (see `seqpipe.parallel.as_torch`)."""
        return provided("Sequence.as_torch")(
            self, workers, use_multiprocessing, pin_memory, device, prefetch, shard
        )

    def as_jax(
        self,
        sharding: Any = None,
        *,
        workers: int = 0,
        use_multiprocessing: bool = True,
        prefetch: int = 2,
        shard: Any = "auto",
    ) -> Any:
        """This sequence's batches as ``jax.Array``s, laid out by ``sharding`` when
        given (see `seqpipe.parallel.as_jax`)."""
        return provided("Sequence.as_jax")(
            self,
            sharding,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            prefetch=prefetch,
            shard=shard,
        )

    def __or__(self, transform: Callable) -> Any:
        """Wraps this sequence in a `Pipeline` and appends ``transform``."""
        return provided("Sequence.__or__")(self, transform)
