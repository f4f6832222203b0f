"""`StageTimed`: a sequence whose batches are made stage by stage, each stage timed
where it runs (in a worker process, a worker thread or the consumer's thread).

Stage times feed the input metrics (``input/stage_ms/<stage>``). A worker process adds
them to its clock slot (NOTE [ Worker clocks ] in ``parallel/worker_clocks.py``);
threads and the consumer's thread add them to the wrapper's own `LocalStageTimes`.
A `Pipeline` is timed through its stage clock (NOTE [ Stage clock ] in
``pipeline/pipeline.py``), one clock read per stage; any other sequence is one stage.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..pipeline import Pipeline
from ..pipeline.stages import stage_list
from .worker_clocks import MAX_STAGES, this_worker


class LocalStageTimes:
    """Seconds per stage and batches timed, summed by the threads of this process.

    Example:
        >>> times = LocalStageTimes()
        >>> times.add_stage(0, 0.5)
        >>> times.end_timed(0.0)
        >>> times.read()
        ((0.5, 0.0), 1)
    """

    def __init__(self, stages: int = 2) -> None:
        self._lock = threading.Lock()  # several worker threads add at once
        self._seconds = [0.0] * min(stages, MAX_STAGES)
        self._batches = 0

    def add_stage(self, position: int, seconds: float) -> None:
        """Adds ``seconds`` to stage ``position`` (stages past `MAX_STAGES` are not kept)."""
        if position < len(self._seconds):
            with self._lock:
                self._seconds[position] += seconds

    def end_timed(self, now: float) -> None:
        """Counts one timed batch (a worker process counts its own, in its clock slot)."""
        with self._lock:
            self._batches += 1

    def read(self) -> tuple[tuple[float, ...], int]:
        """``(seconds per stage, batches)`` so far."""
        with self._lock:
            return tuple(self._seconds), self._batches


class StageTimed:
    """``sequence`` with each batch's stages timed where the batch is computed.

    Everything else (``len``, ``epoch``, ``set_epoch``, ``pure_epochs``, ...) is the
    wrapped sequence's. A transform-free `Pipeline` is still read in place by enqueuer
    workers (NOTE [ Read-direct ] in ``parallel/direct.py``): `get_batch` passes ``out``
    on.

    Args:
        sequence: a `Pipeline` or any `Sequence`.

    Example:
        >>> import numpy as np
        >>> timed = StageTimed(Pipeline(np.arange(10), batch_size=5))
        >>> timed[1].tolist(), len(timed), timed.names
        ([5, 6, 7, 8, 9], 2, ['source: ndarray(10,)', 'batch(size=5, shuffle=False)'])
        >>> timed.local.read()[1]
        1
    """

    def __init__(self, sequence: Any) -> None:
        self.timed_sequence = sequence
        self.names = [stage.name for stage in stage_list(sequence)]
        self.local = LocalStageTimes(len(self.names))

    def __len__(self) -> int:
        return len(self.timed_sequence)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("timed_sequence", "names", "local"):
            raise AttributeError(name)  # unpickling looks these up before __dict__ is set
        return getattr(self.timed_sequence, name)

    def __getstate__(self) -> dict[str, Any]:
        # A worker process times into its own clock slot, not into a copy of ours;
        # attributes starting with "_" belong to one process too.
        return {k: v for k, v in self.__dict__.items() if k != "local" and k[0] != "_"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, local=LocalStageTimes(len(state["names"])))

    def __getitem__(self, index: int) -> Any:
        sequence = self.timed_sequence
        if isinstance(sequence, Pipeline):
            return self.get_batch(int(index), sequence.epoch)
        marks = self._begin(index, 0)
        started = time.perf_counter()
        batch = sequence[index]
        ended = time.perf_counter()
        self._mark(marks, 0, ended - started, batch)
        return self._end(marks, batch, ended)

    def get_batch(self, index: int, epoch: int, out: Any = None) -> Any:
        """`Pipeline.get_batch`, with each stage's seconds recorded."""
        marks = self._begin(index, epoch)
        last = time.perf_counter()

        def clock(position: int, output: Any) -> None:
            nonlocal last
            now = time.perf_counter()
            self._mark(marks, position, now - last, output)
            last = now

        batch = self.timed_sequence.get_batch(index, epoch, out, clock)
        return self._end(marks, batch, last)

    # What a batch's stage times go to: a subclass may keep them otherwise (the
    # profile's recording returns them with the batch).

    def _begin(self, index: int, epoch: int) -> Any:
        return this_worker() or self.local

    def _mark(self, sink: Any, position: int, seconds: float, output: Any) -> None:
        sink.add_stage(position, seconds)

    def _end(self, sink: Any, batch: Any, ended: float) -> Any:
        sink.end_timed(ended)
        return batch
