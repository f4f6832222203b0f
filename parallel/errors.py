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
