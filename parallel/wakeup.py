"""`WakeUp`: how the consumer's thread and the pool's dispatcher thread wake each other.

NOTE [ Handing batches to the consumer ]
Per batch, the consumer appends a `Task` to a deque and later pops its result from a
dict: no `Future`, no lock, no pipe write. It wakes the dispatcher only when the
dispatcher said it is hungry (a worker is running low and nothing is pending); else
the next results wake the dispatcher, which then sends every pending task at once. The
dispatcher notifies the consumer once per round of pipe reads, and only when the
consumer said it is waiting. Both sides set their flag before they look at the other
side's data, so under the GIL no wake-up is lost.
"""

from __future__ import annotations

import os
import threading


class WakeUp:
    """The wake pipe (consumer to dispatcher), the signal (dispatcher to consumer) and
    the flags that say when either is needed (NOTE [ Handing batches to the consumer ]).

    The flags are plain attributes, read and set on the per-batch path: ``hungry`` (set
    by the dispatcher: the next task must wake it; cleared by the consumer that does),
    ``consumer_waiting`` (set by the consumer while it waits for a result) and
    ``delivered`` (set by the dispatcher when a result arrived since its last `notify`).

    Example:
        >>> wakeup = WakeUp()
        >>> wakeup.wake()
        >>> wakeup.drain()
        >>> wakeup.delivered = wakeup.consumer_waiting = True
        >>> wakeup.notify(stopping=False)
        >>> wakeup.wait(timeout=1.0)  # returns at once: notified
        >>> wakeup.close()
    """

    __slots__ = ("_signal", "_wake_r", "_wake_w", "consumer_waiting", "delivered", "hungry")

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        # Released by the dispatcher to wake a waiting consumer: a bare lock used as a
        # binary semaphore costs a fraction of a Condition's notify.
        self._signal = threading.Lock()
        self._signal.acquire()
        self.consumer_waiting = False
        self.hungry = True
        self.delivered = False

    # -- called from the consumer's thread ---------------------------------------------

    def wake(self) -> None:
        """Wakes the dispatcher (a no-op once `close` ran)."""
        try:  # noqa: SIM105 (per-batch path: contextlib.suppress costs more than the write)
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # closed by shutdown: nobody to wake

    def wait(self, timeout: float) -> None:
        """Waits at most ``timeout`` seconds for the dispatcher's `notify`."""
        self._signal.acquire(timeout=timeout)

    def close(self) -> None:
        """Closes the wake pipe (once the dispatcher thread has ended)."""
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- called from the dispatcher thread ----------------------------------------------

    def fileno(self) -> int:
        """The wake pipe's read end, for the dispatcher's selector."""
        return self._wake_r

    def drain(self) -> None:
        """Reads the wake-ups written since the last drain (one read covers many)."""
        os.read(self._wake_r, 65536)

    def notify(self, stopping: bool) -> None:
        """Wakes the consumer if it waits and a result was delivered, or if ``stopping``."""
        if (self.delivered and self.consumer_waiting) or stopping:
            try:  # noqa: SIM105 (per-round path, as in wake)
                self._signal.release()
            except RuntimeError:
                pass  # released already: one wake-up is enough
        self.delivered = False
