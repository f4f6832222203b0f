"""Chaos soak of the enqueuer: SIGKILLed workers, long-held batches, a stop and resume.

Run: ``python benchmarks/soak.py``. 20 epochs of a 500-batch sequence of 1 MB batches
through ``OrderedEnqueuer(use_multiprocessing=True)`` with 4 workers, while:

- a random live worker is SIGKILLed about every 100 batches (50 to 150, at random);
- the consumer keeps a random 5 % of the batches alive for 20 to 200 more batches, and
  checks their bytes again when it lets them go (a reused segment would show);
- one epoch is interrupted by ``stop()`` halfway and resumed from ``state()`` by a new
  enqueuer.

Checks: every epoch delivers each batch exactly once, in order, with the right bytes;
tree RSS (this process and its children) after epoch 20 is within +10 % of epoch 2;
no shared-memory segment is left; no worker process outlives the run. Prints one
summary line, then each of these targets labelled met or not met; exits 1 if a check
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import os
import random
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from _common import target_line  # noqa: E402

from seqpipe.parallel import OrderedEnqueuer  # noqa: E402
from seqpipe.parallel.shm import leftover_segments  # noqa: E402
from seqpipe.pipeline import Sequence  # noqa: E402

BATCH_BYTES = 1 << 20


def _fill(epoch: int, index: int) -> int:
    return (index * 31 + epoch * 7) % 251


class Marked(Sequence):
    """Batch ``i`` of epoch ``e``: ``([e, i], 1 MB of bytes equal to _fill(e, i))``."""

    def __init__(self, num_batches: int) -> None:
        self.num_batches = num_batches
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int):
        fill = _fill(self.epoch, index)
        return np.array([self.epoch, index]), np.full(BATCH_BYTES, fill, dtype=np.uint8)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def _intact(batch, epoch: int, index: int) -> bool:
    ids, payload = batch
    fill = _fill(epoch, index)
    # Every 4 KiB page, so a page of another batch would be seen.
    return ids.tolist() == [epoch, index] and bool(np.all(payload[::4096] == fill))


def _tree_rss() -> int:
    import psutil

    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Soak:
    """The consumer: drives the epochs, injects the faults and records what it saw."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.seq = Marked(args.batches)
        self.pids: set[int] = set()
        self.prefixes: set[str] = set()
        self.kills = self.held_total = self.corrupt = 0
        # Heap of (release after this many deliveries, tie-break, epoch, index, batch).
        self.held: list[tuple[int, int, int, int, object]] = []
        self._ties = itertools.count()
        self.delivered = 0
        self.next_kill = self._kill_gap()
        self.failures: list[str] = []
        self.good_epochs = 0

    def _kill_gap(self) -> int:
        return self.delivered + self.rng.randint(50, 150)

    def _start(self, state: dict | None = None) -> OrderedEnqueuer:
        enqueuer = OrderedEnqueuer(self.seq, use_multiprocessing=True, initial_state=state)
        enqueuer.start(workers=self.args.workers, max_queue_size=10)
        return enqueuer

    def _remember(self, enqueuer: OrderedEnqueuer) -> None:
        pool = enqueuer._executor.pool
        self.pids.update(pool.worker_pids_started)
        self.prefixes.add(pool.shm.prefix)

    def _kill_a_worker(self, enqueuer: OrderedEnqueuer) -> None:
        pids = enqueuer._executor.pool.worker_pids()
        if pids:
            with contextlib.suppress(ProcessLookupError):  # died meanwhile: replaced anyway
                os.kill(self.rng.choice(pids), signal.SIGKILL)
                self.kills += 1

    def _release(self, now: int, everything: bool = False) -> None:
        while self.held and (everything or self.held[0][0] <= now):
            _, _, epoch, index, batch = heapq.heappop(self.held)
            if not _intact(batch, epoch, index):
                self.corrupt += 1

    def _consume(
        self, enqueuer: OrderedEnqueuer, epoch: int, seen: list[int], stop_at: int | None = None
    ) -> None:
        """Reads the rest of ``epoch`` from ``enqueuer``, or until ``stop_at`` batches of
        it were seen."""
        for batch in enqueuer.iter_epoch():
            index = int(batch[0][1])
            if int(batch[0][0]) != epoch or not _intact(batch, epoch, index):
                self.corrupt += 1
            seen.append(index)
            self.delivered += 1
            if self.rng.random() < 0.05:
                release = self.delivered + self.rng.randint(20, 200)
                heapq.heappush(self.held, (release, next(self._ties), epoch, index, batch))
                self.held_total += 1
            del batch
            self._release(self.delivered)
            if self.delivered >= self.next_kill:
                self._remember(enqueuer)
                self._kill_a_worker(enqueuer)
                self.next_kill = self._kill_gap()
            if len(seen) == stop_at:
                return

    def run(self) -> tuple[list[float], float]:
        args = self.args
        interrupted = args.epochs // 2
        rss: list[float] = []
        start = time.perf_counter()
        enqueuer = self._start()
        for epoch in range(args.epochs):
            seen: list[int] = []
            if epoch == interrupted:
                self._consume(enqueuer, epoch, seen, args.batches // 2)
                state = enqueuer.state()
                self._remember(enqueuer)
                enqueuer.stop()
                enqueuer = self._start(state)
            self._consume(enqueuer, epoch, seen)
            if seen == list(range(args.batches)):
                self.good_epochs += 1
            else:
                self.failures.append(f"epoch {epoch + 1}: {len(seen)} batches, not in order")
            rss.append(_tree_rss())
        self._remember(enqueuer)
        enqueuer.stop()
        self._release(0, everything=True)
        return rss, time.perf_counter() - start

    def check_cleanup(self) -> tuple[list[str], list[int]]:
        time.sleep(0.5)  # the resource tracker and the kernel reap asynchronously
        segments = [s for p in self.prefixes for s in leftover_segments(p)]
        return segments, sorted(pid for pid in self.pids if _alive(pid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    soak = Soak(args)
    rss, seconds = soak.run()
    segments, orphans = soak.check_cleanup()
    growth = rss[-1] / rss[1] - 1 if len(rss) > 1 else 0.0
    targets = [
        target_line("epochs exactly once, in order", soak.good_epochs, "==", args.epochs, "", 0),
        target_line(f"tree RSS, epoch {len(rss)} vs 2", 100 * growth, "<=", 10, " %", 1),
        target_line("batches with wrong bytes", soak.corrupt, "==", 0, "", 0),
        target_line("shared-memory segments left", len(segments), "==", 0, "", 0),
        target_line("worker processes left", len(orphans), "==", 0, "", 0),
    ]
    failures = soak.failures + [line for line in targets if not line.endswith(": met")]
    verdict = "PASS" if not failures else "FAIL: " + "; ".join(failures)
    print(
        f"soak {verdict} | {args.epochs} epochs x {args.batches} batches of 1 MB, "
        f"{args.workers} workers, {seconds:.1f} s | exactly-once in order: "
        f"{soak.good_epochs}/{args.epochs} epochs (epoch {args.epochs // 2 + 1} stopped "
        f"halfway and resumed from state()) | "
        f"{soak.kills} workers SIGKILLed, {len(soak.pids)} started | {soak.held_total} "
        f"batches held 20-200 batches, {soak.corrupt} corrupt | tree RSS epoch 2 / "
        f"{len(rss)}: {rss[1] / 1e6:.0f} / {rss[-1] / 1e6:.0f} MB ({growth:+.1%}) | "
        f"{len(segments)} shm segments and {len(orphans)} workers left"
    )
    print("\n".join(targets))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
