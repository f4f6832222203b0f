"""Errors the enqueuer raises to the consumer."""

from __future__ import annotations


def batch_note(index: int, epoch: int) -> str:
    """The note added to an exception raised while computing a batch."""
    return f"raised by __getitem__({index}) in the enqueuer, epoch {epoch}"


class WorkerCrashed(RuntimeError):
    """A batch killed ``max_retries`` worker processes in a row.

    Attributes:
        index: the batch index that kept killing workers.
        exitcodes: the exit codes of the dead workers (``-9`` is SIGKILL).
    """

    def __init__(self, index: int, exitcodes: list[int | None]) -> None:
        self.index = index
        self.exitcodes = list(exitcodes)
        super().__init__(
            f"batch {index} killed {len(exitcodes)} worker processes (exit codes "
            f"{self.exitcodes}); giving up on it. Negative codes are signals: -9 is "
            f"SIGKILL (often the out-of-memory killer), -11 a segmentation fault"
        )


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, traceback_text: str) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback_text}"""'


class BatchTimeout(TimeoutError):
    """A batch overran ``batch_timeout`` on ``max_retries`` workers in a row.

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
            f"{len(exitcodes)} worker processes in a row (each was killed and the batch "
            f"recomputed); giving up on it. Its __getitem__ may hang (a deadlock, a stuck "
            f"read) or need a larger batch_timeout"
        )
