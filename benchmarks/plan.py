"""Shuffled epoch plans at any scale: first batch of an epoch and peak RSS, by dataset size.

Run: ``python benchmarks/plan.py``. For each n (10^6, 10^8, 10^9, 10^12 by default) a
fresh process builds ``Pipeline(VirtualIds(n), batch_size=256, shuffle=True)`` over a
virtual source that returns the ids asked for, and times ``get_batch(0, epoch)`` for 20
new epochs (each needs new keys: the cost paid at an epoch boundary), then the plan cost
of one batch (``EpochPlan.batch``, 256 samples) at random positions; the process's peak
RSS is its ``ru_maxrss``. Wall-clock medians are shown with the worst epoch's CPU time
(on a loaded machine, a wall-clock maximum measures the scheduler, not the plan); the
process's very first call is shown apart: it also imports ``numpy.random`` once.

Beside it, another fresh process does what the plan did before
(``np.random.default_rng([seed, epoch, 0]).permutation(n)``, then the first 256 ids)
where the permutation fits comfortably in memory: up to ``--max-permutation`` samples
(10^8 by default; 10^9 needs ~16 GB at its peak, too much for a shared machine).
Targets: the first batch of an epoch in <= 5 ms at every n; peak RSS at the largest n
within 10 MB of the smallest. Each is printed as met or not met (`_common.target_line`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _common import markdown_table, target_line  # noqa: E402

BATCH = 256
EPOCHS = 20
PLAN_CALLS = 200
FIRST_BATCH_TARGET_MS = 5.0
RSS_TARGET_MB = 10.0


class VirtualIds:
    """``n`` samples whose sample ``i`` is ``i``; nothing is stored."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: object) -> object:
        import numpy as np

        if isinstance(key, slice):
            return np.arange(*key.indices(self.n), dtype=np.int64)
        return np.asarray(key, dtype=np.int64)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_seqpipe(n: int) -> dict[str, float]:
    from seqpipe.pipeline import Pipeline

    p = Pipeline(VirtualIds(n), batch_size=BATCH, shuffle=True, seed=0)
    start = time.perf_counter()
    p.get_batch(0, 0)  # the process's first call also imports numpy.random (lazy in numpy 2)
    cold = time.perf_counter() - start
    wall, cpu = [], []
    for epoch in range(1, EPOCHS + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        batch = p.get_batch(0, epoch)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert len(batch) == min(BATCH, n)
    plan, rng = p.plan, random.Random(0)
    per_batch = []
    for _ in range(PLAN_CALLS):
        index = rng.randrange(plan.num_batches)
        start = time.perf_counter()
        plan.batch(index, EPOCHS)
        per_batch.append(time.perf_counter() - start)
    return {
        "cold_ms": cold * 1e3,
        "first_ms": statistics.median(wall) * 1e3,
        "first_max_cpu_ms": max(cpu) * 1e3,
        "plan_ms": statistics.median(per_batch) * 1e3,
        "rss_mb": _peak_rss_mb(),
    }


def _child_permutation(n: int) -> dict[str, float]:
    import numpy as np

    import seqpipe.pipeline  # noqa: F401  (the same imports as the seqpipe cell: equal baselines)

    source = VirtualIds(n)
    start = time.perf_counter()
    order = np.random.default_rng([0, 1, 0]).permutation(n)
    batch = source[order[:BATCH]]
    elapsed = time.perf_counter() - start
    assert len(batch) == min(BATCH, n)
    return {"first_ms": elapsed * 1e3, "rss_mb": _peak_rss_mb()}


def _run_child(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--n", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e8, 1e9, 1e12])
    parser.add_argument("--max-permutation", type=float, default=1e8)
    parser.add_argument("--child", choices=["seqpipe", "permutation"])
    parser.add_argument("--n", type=int)
    args = parser.parse_args()
    if args.child:
        child = _child_seqpipe if args.child == "seqpipe" else _child_permutation
        print(json.dumps(child(args.n)))
        return
    rows, results = [], []
    for n in (int(s) for s in args.sizes):
        ours = _run_child("seqpipe", n)
        theirs = _run_child("permutation", n) if n <= args.max_permutation else None
        results.append((n, ours))
        rows.append(
            [
                f"10^{len(str(n)) - 1}" if str(n).strip("0") == "1" else str(n),
                _fmt_ms(ours["first_ms"]),
                _fmt_ms(ours["first_max_cpu_ms"]),
                _fmt_ms(ours["cold_ms"]),
                f"{ours['plan_ms'] * 1e3:.0f} µs",
                f"{ours['rss_mb']:.1f} MB",
                _fmt_ms(theirs["first_ms"]) if theirs else "not run (does not fit)",
                f"{theirs['rss_mb']:.1f} MB" if theirs else "-",
                f"{theirs['first_ms'] / ours['first_ms']:.0f}x" if theirs else "-",
            ]
        )
    header = [
        "samples",
        f"first batch of an epoch (median of {EPOCHS})",
        "worst epoch, CPU time",
        "first call of the process",
        f"plan cost of one batch ({BATCH} ids, median)",
        "peak RSS",
        "np.random permutation: first batch",
        "its peak RSS",
        "speed-up",
    ]
    print(f"Pipeline(shuffle=True, batch_size={BATCH}) over a virtual source, one process per cell")
    print()
    print(markdown_table(header, rows))
    worst = max(max(r["first_ms"], r["first_max_cpu_ms"], r["cold_ms"]) for _, r in results)
    growth = results[-1][1]["rss_mb"] - results[0][1]["rss_mb"]
    print()
    print(
        target_line(
            "first batch of an epoch, worst of the medians, CPU maxima and first calls",
            worst,
            "<=",
            FIRST_BATCH_TARGET_MS,
            unit=" ms",
        )
    )
    print(
        target_line(
            f"|peak RSS at {results[-1][0]:.0e} samples - at {results[0][0]:.0e}|",
            abs(growth),
            "<=",
            RSS_TARGET_MB,
            unit=" MB",
            digits=1,
        )
    )


if __name__ == "__main__":
    main()
