"""workers="auto" beside the best fixed worker count, and what measuring costs.

Run: ``python benchmarks/autotune.py``. Every cell runs in a fresh process. On the
"tiny", "large", "cpu" (see benchmarks/enqueuer.py) and "io" workloads (300 batches that
each wait 20 ms, as on storage, and compute nothing), the enqueuer runs 3 epochs with
``workers=1..8`` and with ``workers="auto"``; a cell's time is the mean of epochs 2-3
(epoch 1 holds the start-up and, for "auto", the tuning), the median over repeats. Target:
"auto" >= 0.9x the best fixed count on each workload.

Then the cost of measuring, on "tiny" against ``workers=2`` (each side the median of
repeats, cells interleaved): the enqueuer with ``monitor=True`` (worker clocks, stage
timing, the monitor thread: what a TensorBoard callback turns on), over 8 epochs; and
`parallel.profile` (stages recorded in the workers) over `PROFILED` batches of "tiny" as a
`Pipeline`, against the same batches taken without it. Targets: <= 3 % each. On 2 cores
a "tiny" cell's epochs take one of two times (about 77 or 112 ms in one run, whichever
way the scheduler places the consumer and 2 workers), in either mode; so the medians need
10 repeats a side, where 3 to 5 measured the placement instead of the cost. Every
target is printed as met or not met (`_common.target_line`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, spawn_cell, target_line  # noqa: E402

WORKLOADS = ["tiny", "large", "cpu", "io"]
FIXED = range(1, 9)
EPOCHS = 3
OVERHEAD_EPOCHS = 8
PROFILED = 8000  # four epochs of "tiny": a window long enough to time


def run_cell(workload: str, mode: str, param: int) -> dict:
    """One cell in this process: ``mode`` is a worker count, ``auto``, ``plain`` or
    ``monitor`` (2 workers, unmeasured or measured, more epochs), ``batches`` (2 workers,
    `PROFILED` batches after the first, as the profile measures) or ``profile``."""
    from _workloads import Workload

    from seqpipe.parallel import OrderedEnqueuer, profile
    from seqpipe.pipeline import Pipeline

    seq = Workload(workload, param)
    if mode in ("batches", "profile"):
        seq = Pipeline(seq)  # a Pipeline: profiled over several epochs
    if mode == "profile":
        report = profile(seq, batches=PROFILED, workers=2)
        return {"rate": report.throughput, "overhead_us": report.overhead_us}
    enqueuer = OrderedEnqueuer(seq, use_multiprocessing=True, monitor=mode == "monitor")
    enqueuer.start(workers=int(mode) if mode.isdigit() else "auto" if mode == "auto" else 2)
    try:
        if mode == "batches":
            batches = enqueuer.get()
            next(batches)
            start = time.perf_counter()
            for _ in range(PROFILED):
                next(batches)
            return {"rate": PROFILED / (time.perf_counter() - start)}
        times = []
        for _ in range(OVERHEAD_EPOCHS if mode in ("plain", "monitor") else EPOCHS):
            start = time.perf_counter()
            count = sum(1 for _ in enqueuer.iter_epoch())
            times.append(time.perf_counter() - start)
            assert count == len(seq), (mode, count)
        decisions = [] if enqueuer.monitor is None else enqueuer.monitor.decisions
        return {
            "epoch_times": times,
            "workers": enqueuer.worker_count,
            "decisions": [str(d) for d in decisions],
        }
    finally:
        enqueuer.stop()


def _spawn(workload: str, mode: str, param: int) -> dict | None:
    return spawn_cell(__file__, workload, mode, str(param))


def _steady(runs: list[dict]) -> float:
    """Median over runs of the mean of epochs 2.. (seconds per epoch)."""
    return statistics.median(float(np.mean(r["epoch_times"][1:])) for r in runs)


def sweep(workloads: list[str], repeats: int, param: int) -> list[dict]:
    """Fixed counts and auto on each workload; one row per workload."""
    rows = []
    for workload in workloads:
        fixed = {}
        for workers in FIXED:
            runs = [r for r in (_spawn(workload, str(workers), param) for _ in range(repeats)) if r]
            if runs:
                fixed[workers] = _steady(runs)
        auto_runs = [r for r in (_spawn(workload, "auto", param) for _ in range(repeats)) if r]
        best = min(fixed, key=fixed.get) if fixed else None
        auto = _steady(auto_runs) if auto_runs else float("nan")
        row = {
            "workload": workload,
            "fixed": fixed,
            "best": best,
            "auto": auto,
            "auto_workers": [r["workers"] for r in auto_runs],
            "decisions": auto_runs[0]["decisions"] if auto_runs else [],
            "ratio": fixed[best] / auto if best else float("nan"),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def overheads(repeats: int) -> dict[str, float]:
    """Percent slower than ``workers=2`` on "tiny": measured (monitor=True) and profiled."""
    plain, measured, taken, profiled = [], [], [], []
    for _ in range(repeats):  # interleaved, so that a busier minute hits both sides
        for mode, into in (("plain", plain), ("monitor", measured)):
            run = _spawn("tiny", mode, 0)
            if run:
                into.append(float(np.median(run["epoch_times"][1:])))
        for mode, into in (("batches", taken), ("profile", profiled)):
            run = _spawn("tiny", mode, 0)
            if run:
                into.append(run["rate"])
    nan = float("nan")
    return {
        "monitor": 100 * (statistics.median(measured) / statistics.median(plain) - 1)
        if measured and plain
        else nan,
        "profile": 100 * (statistics.median(taken) / statistics.median(profiled) - 1)
        if taken and profiled
        else nan,
        "plain_ms": 1e3 * statistics.median(plain) if plain else nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", nargs=3, metavar=("WORKLOAD", "MODE", "P"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-repeats", type=int, default=10)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    if args.cell:
        workload, mode, param = args.cell
        print(json.dumps(run_cell(workload, mode, int(param))))
        return
    from enqueuer import calibrate_cpu

    param = calibrate_cpu()
    rows = sweep(args.workloads.split(","), args.repeats, param)
    cost = overheads(args.overhead_repeats)
    print(
        f"workers=1..8 and 'auto', {EPOCHS} epochs a cell, s/epoch of epochs 2-{EPOCHS}, "
        f"medians of {args.repeats} fresh processes; cpu batch: {param} loops (~20 ms)"
    )
    header = ["workload", *(f"{w}" for w in FIXED), "auto", "auto: workers at the end"]
    table = [
        [
            r["workload"],
            *(f"{r['fixed'][w]:.3f}" if w in r["fixed"] else "-" for w in FIXED),
            f"{r['auto']:.3f}",
            ", ".join(map(str, r["auto_workers"])),
        ]
        for r in rows
    ]
    print(markdown_table(header, table))
    print("targets:")
    for r in rows:
        name = f"{r['workload']}: auto vs the best fixed count ({r['best']} workers)"
        print("  " + target_line(name, r["ratio"], ">=", 0.9))
    print(
        "  "
        + target_line("tiny: monitor=True vs workers=2, slower by", cost["monitor"], "<=", 3, " %")
    )
    print(
        "  "
        + target_line(
            "tiny: profile(workers=2) vs the same batches unprofiled, slower by",
            cost["profile"],
            "<=",
            3,
            " %",
        )
    )
    for r in rows:
        if r["decisions"]:
            print(f"auto's decisions on {r['workload']} (first run):")
            print("\n".join(f"  {d}" for d in r["decisions"]))


if __name__ == "__main__":
    main()
