"""`WakeUp`: how the consumer's thread and the pool's dispatcher thread wake each other.

NOTE [ Handing batches to the consumer ]
Per batch, the consumer appends a `Task` to a deque and later pops its result from a
dict: no `Future`, no pipe write. It wakes the dispatcher only when the dispatcher said
it is hungry (a worker is running low and nothing is pending); else the next results
wake the dispatcher, which then sends every pending task at once. The dispatcher
notifies the consumer once per round of pipe reads, and only when the consumer said it
is waiting.

No wake-up is lost, with or without a GIL (free-threaded builds included), because each
side sets or reads its flag and looks at the other side's data in one step under
`WakeUp.lock` (one uncontended lock, a fraction of a microsecond):
- dispatcher: ``hungry = <a worker runs low>; more = hungry and <tasks pending>``;
  consumer: ``<append a task>; must_wake = hungry; hungry = False``. If the consumer's
  step comes first, the dispatcher sees its task; else the consumer sees ``hungry``
  and writes to the wake pipe, which the dispatcher's selector reports.
- consumer: ``consumer_waiting = True; <pop its result>``; dispatcher, after storing
  the round's results: ``<notify if delivered and consumer_waiting>``. If the
  consumer's step comes first, the dispatcher sees it waiting and releases `_signal`;
  else the lock orders the results stored before the consumer's look, which finds its
  result.
A stale flag costs at most one spurious wake-up, and every wait is bounded anyway
(NOTE [ Bounded waits ] in ``parallel/pool.py``).
"""

from __future__ import annotations

import os
import threading


class WakeUp:
    """The wake pipe (consumer to dispatcher), the signal (dispatcher to consumer) and
    the flags that say when either is needed (NOTE [ Handing batches to the consumer ]).

    The flags are plain attributes, read and set on the per-batch path under ``lock``
    where the other thread's data is looked at too: ``hungry`` (set by the dispatcher:
    the next task must wake it; cleared by the consumer that does),
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

    __slots__ = (
        "_signal",
        "_wake_r",
        "_wake_w",
        "consumer_waiting",
        "delivered",
        "hungry",
        "lock",
    )

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        # Released by the dispatcher to wake a waiting consumer: a bare lock used as a
        # binary semaphore costs a fraction of a Condition's notify.
        self._signal = threading.Lock()
        self._signal.acquire()
        self.lock = threading.Lock()
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
        with self.lock:
            wake = (self.delivered and self.consumer_waiting) or stopping
            self.delivered = False
        if wake:
            try:  # noqa: SIM105 (per-round path, as in wake)
                self._signal.release()
            except RuntimeError:
                pass  # released already: one wake-up is enough
