"""Ctrl-C stress: a consumer of an OrderedEnqueuer with worker processes gets SIGINT.

Run: ``python benchmarks/ctrl_c_stress.py`` (not part of the test suite). Each run
starts a fresh consumer process (its own session, like a program at a terminal) that
iterates ``OrderedEnqueuer(use_multiprocessing=True)`` with 2 workers; SIGINT goes to
its whole process group, as a terminal's Ctrl-C does, either while the workers start
(0-500 ms after ``start()`` returned, before the first batch) or while batches flow
(0-300 ms after the first batch). Runs cycle through both moments for a consumer that
imports TensorFlow at module level of ``__main__`` (so its workers, which re-import
``__main__``, import it too) and one that does not. 2 CPU burner processes run
throughout. ``--root`` runs the consumer on another checkout, to compare.

Per run it measures the time from SIGINT to the ``KeyboardInterrupt`` in the consumer
and to the consumer's exit; a consumer still alive 30 s after SIGINT is a hang (it is
then killed). Then it checks that the workers are gone and that no shared-memory
segment of the consumer is left (waiting up to 5 s for both). Prints one line per run
with ``-v``, a summary table with a total row over all runs, and the targets (no hang,
no process or segment left, no other error) labelled met or not met; exits 1 when one
is not met. ``--budget`` stops early (after the current run) and the first line says
how many runs were done.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from seqpipe.parallel.shm import leftover_segments  # noqa: E402

HANG_SECONDS = 30.0
CLEANUP_SECONDS = 5.0

CONSUMER = '''\
import signal
# A program at a terminal has Python's handler from the start; a background job of a
# non-interactive shell would inherit SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
{tf_import}
import os
import sys
import time

import numpy as np

sys.path.insert(0, {root!r})
from seqpipe.pipeline import Sequence


class Busy(Sequence):
    """Batches of 512 KiB (shared memory) after ~2 ms of Python work."""

    def __len__(self):
        return 100_000

    def __getitem__(self, index):
        total = 0
        for i in range(20_000):
            total += i * i % 7
        return np.full(512 * 1024, (index + total) % 251, dtype=np.uint8)


def main():
    from seqpipe.parallel import OrderedEnqueuer

    enqueuer = OrderedEnqueuer(Busy(), use_multiprocessing=True)
    enqueuer.start(workers=2, max_queue_size=6)
    pool = enqueuer._executor.pool
    print("STARTED", pool.shm.prefix, flush=True)
    ready = False
    try:
        for batch in enqueuer.get():
            if not ready:
                print("READY", *pool.worker_pids_started, flush=True)
                ready = True
            batch[::4096].sum()  # the consumer's own work
    except KeyboardInterrupt:
        print("INTERRUPTED", time.monotonic(), flush=True)
        raise


if __name__ == "__main__":
    main()
'''


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: the consumer, its forkserver,
    resource tracker and workers all belong to the consumer's session."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry))
    return members


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _line(proc: subprocess.Popen, word: str) -> list[str] | None:
    """The consumer's next line if it starts with ``word`` (None: it never came)."""
    if not select.select([proc.stdout], [], [], 300)[0]:
        return None
    words = proc.stdout.readline().split()
    return words[1:] if words[:1] == [word] else None


def one_run(script: str, rng: random.Random, log: str, during_start: bool, root: str) -> dict:
    """Starts a consumer, interrupts it, and measures what happens."""
    with open(log, "w+") as errors:
        return _interrupt(script, rng, errors, during_start, root)


def _interrupt(script: str, rng: random.Random, errors, during_start: bool, root: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, script],
        stdout=subprocess.PIPE,
        stderr=errors,  # a file: a full stderr pipe would block the consumer
        text=True,
        start_new_session=True,
        # The forkserver imports parallel.worker with its own sys.path: PYTHONPATH and
        # the working directory ('') must lead to the same checkout.
        cwd=os.path.dirname(script),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": root},
    )
    result: dict = {"hang": False, "processes_left": [], "segments_left": []}
    try:
        started = _line(proc, "STARTED")
        ready = None if during_start or started is None else _line(proc, "READY")
        if started is None or (ready is None and not during_start):
            _kill_group(proc.pid)
            proc.wait()
            errors.seek(0)
            result["error"] = f"consumer did not start: {errors.read()[-1500:]}"
            return result
        prefix = started[0]
        time.sleep(rng.uniform(0.0, 0.5 if during_start else 0.3))
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=HANG_SECONDS)
        except subprocess.TimeoutExpired:
            result["hang"] = True
            _kill_group(proc.pid)
            out, _ = proc.communicate()
        result["exit_s"] = time.monotonic() - sent
        result["returncode"] = proc.returncode
        words = [line.split() for line in out.splitlines()]
        acted = [float(w[1]) for w in words if w[:1] == ["INTERRUPTED"]]
        result["interrupt_s"] = acted[0] - sent if acted else None
        result["batches_before"] = ready is not None or any(w[:1] == ["READY"] for w in words)
        deadline = time.monotonic() + CLEANUP_SECONDS
        while time.monotonic() < deadline:
            left, segments = _session(proc.pid), leftover_segments(prefix)
            if not left and not segments:
                break
            time.sleep(0.05)
        result["clean_s"] = time.monotonic() - sent
        result["processes_left"], result["segments_left"] = left, segments
        _kill_group(proc.pid)  # do not let one run's leftovers load the next
        errors.seek(0)
        err = errors.read()
        if "Traceback" in err and "KeyboardInterrupt" not in err:
            result["error"] = err[-1500:]
        return result
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()


def _burners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def _failures(runs: list[dict]) -> dict[str, int]:
    """What must never happen, counted over ``runs``: each count's target is 0."""
    return {
        "hangs": sum(r["hang"] for r in runs),
        "runs with processes left": sum(bool(r["processes_left"]) for r in runs),
        "runs with /dev/shm left": sum(bool(r["segments_left"]) for r in runs),
        "other errors": sum("error" in r for r in runs),
    }


def _summary(name: str, runs: list[dict]) -> list[str]:
    """One row of the summary table over ``runs``."""
    failures = _failures(runs)
    exits = [r["exit_s"] for r in runs if "exit_s" in r]
    acted = [r["interrupt_s"] for r in runs if r.get("interrupt_s") is not None]
    cleans = [r["clean_s"] for r in runs if "clean_s" in r]
    codes = sorted({r.get("returncode") for r in runs})

    def worst(values: list[float]) -> str:
        return f"{max(values):.2f}" if values else "-"

    def median(values: list[float]) -> str:
        return f"{sorted(values)[len(values) // 2]:.2f}" if values else "-"

    return [
        name,
        str(len(runs)),
        str(failures["hangs"]),
        f"{len(acted)}/{len(runs)}",
        f"{median(acted)} / {worst(acted)}",
        f"{median(exits)} / {worst(exits)}",
        f"{median(cleans)} / {worst(cleans)}",
        str(failures["runs with processes left"]),
        str(failures["runs with /dev/shm left"]),
        str(failures["other errors"]),
        " ".join(str(c) for c in codes),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--budget", type=float, default=3 * 3600, help="seconds")
    parser.add_argument("--root", default=ROOT, help="the checkout the consumer imports")
    parser.add_argument("--only", choices=["tf", "no-tf"], help="one consumer kind only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, HERE)
    from _common import markdown_table, target_line

    rng = random.Random(args.seed)
    imports = {
        "tf": ("TensorFlow at module level", "import tensorflow as tf  # noqa: F401"),
        "no-tf": ("no TensorFlow", ""),
    }
    kinds = [args.only] if args.only else list(imports)
    cases = [(kind, during) for kind in kinds for during in (True, False)]
    results: dict[tuple[str, bool], list[dict]] = {case: [] for case in cases}
    start = time.monotonic()
    burners = _burners(args.burners)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scripts = {}
            for kind in kinds:
                scripts[kind] = os.path.join(tmp, f"consumer_{kind}.py")
                with open(scripts[kind], "w") as f:
                    f.write(CONSUMER.format(tf_import=imports[kind][1], root=args.root))
            for run in range(args.runs):
                if time.monotonic() - start > args.budget:
                    break
                kind, during = cases[run % len(cases)]
                log = os.path.join(tmp, "stderr.txt")
                result = one_run(scripts[kind], rng, log, during, args.root)
                results[kind, during].append(result)
                if args.verbose or result["hang"] or "error" in result:
                    print(run, kind, during, result, file=sys.stderr, flush=True)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    done = sum(len(r) for r in results.values())
    print(
        f"{done} of {args.runs} runs in {time.monotonic() - start:.0f} s on {args.root}, "
        f"{args.burners} CPU burners, 2 workers, SIGINT to the consumer's process group; "
        f"hang = alive {HANG_SECONDS:.0f} s after SIGINT"
    )
    rows = [
        _summary(f"{imports[kind][0]}, {'while workers start' if during else 'batches flowing'}", r)
        for (kind, during), r in results.items()
        if r
    ]
    every = [r for runs in results.values() for r in runs]
    rows.append(_summary("total", every))
    print(
        markdown_table(
            [
                "consumer, SIGINT",
                "runs",
                "hangs",
                "KeyboardInterrupt raised",
                "to KeyboardInterrupt s (median / worst)",
                "to exit s (median / worst)",
                "to nothing left s (median / worst)",
                "runs with processes left",
                "runs with /dev/shm left",
                "other errors",
                "exit codes",
            ],
            rows,
        )
    )
    targets = [target_line(name, n, "==", 0, "", 0) for name, n in _failures(every).items()]
    print("\n".join(targets))
    return 0 if all(line.endswith(": met") for line in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
