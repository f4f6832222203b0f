"""Errors the enqueuer raises to the consumer."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .messages import BatchFailed


def batch_note(index: int, epoch: int) -> str:
    """The note added to an exception raised while computing a batch."""
    return f"raised by __getitem__({index}) in the enqueuer, epoch {epoch}"


class WorkerCrashed(RuntimeError):
    """A batch killed ``max_retries + 1`` worker processes in a row: its first try and
    every retry.

    Attributes:
        index: the batch index that kept killing workers.
        exitcodes: the exit codes of the dead workers (``-9`` is SIGKILL).
    """

    def __init__(self, index: int, exitcodes: list[int | None]) -> None:
        self.index = index
        self.exitcodes = list(exitcodes)
        super().__init__(
            f"batch {index} killed {len(exitcodes)} worker processes, its first try and "
            f"max_retries={len(exitcodes) - 1} retries (exit codes {self.exitcodes}); "
            f"giving up on it. Negative codes are signals: -9 is "
            f"SIGKILL (often the out-of-memory killer), -11 a segmentation fault"
        )


class WorkerStartFailed(RuntimeError):
    """``max_retries + 1`` worker processes in a row died before they could run a batch
    (the first and every restart).

    Attributes:
        exitcodes: the exit codes of those workers.
    """

    def __init__(self, exitcodes: list[int | None], start_method: str) -> None:
        self.exitcodes = list(exitcodes)
        super().__init__(
            f"{len(exitcodes)} worker processes in a row exited while starting, the first "
            f"and max_retries={len(exitcodes) - 1} restarts (exit codes {self.exitcodes}), "
            f"before running any batch; their error is printed above, "
            f"on stderr. With start_method={start_method!r} each worker imports the main "
            f"module again: a script that starts an enqueuer must do so under "
            f"`if __name__ == '__main__':`, and the sequence must be importable in a new "
            f"process"
        )


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, traceback_text: str) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback_text}"""'


class BatchTimeout(TimeoutError):
    """A batch overran ``batch_timeout`` on ``max_retries + 1`` workers in a row: its first
    try and every retry.

    Attributes:
        index: the batch index.
        seconds: the ``batch_timeout`` it overran.
        exitcodes: the exit codes of the workers killed for it.
    """

    def __init__(self, index: int, seconds: float | None, exitcodes: list[int | None]) -> None:
        self.index = index
        self.seconds = seconds
        self.exitcodes = list(exitcodes)
        super().__init__(
            f"batch {index} took longer than batch_timeout={seconds} s on "
            f"{len(exitcodes)} worker processes in a row, its first try and "
            f"max_retries={len(exitcodes) - 1} retries (each worker was killed and the "
            f"batch recomputed); giving up on it. Its __getitem__ may hang (a deadlock, a stuck "
            f"read) or need a larger batch_timeout"
        )


def remote_error(failure: BatchFailed) -> BaseException:
    """Rebuilds a worker's exception, naming the batch and chaining its traceback."""
    note = f"{batch_note(failure.index, failure.epoch)} (worker process)"
    error: BaseException | None = None
    if failure.error is not None:
        try:
            error = pickle.loads(failure.error)
        except Exception:
            error = None
    if error is None:
        error = RuntimeError(f"{failure.error_type}: {failure.message} ({note})")
    elif hasattr(error, "add_note"):
        error.add_note(note)
    error.__cause__ = RemoteTraceback(failure.traceback)
    return error
