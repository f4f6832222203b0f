"""Runs a check module as 2 cooperating processes on 127.0.0.1 (torch.distributed, JAX)."""

import json
import os
import socket
import subprocess
import sys
import tempfile


def run_two_processes(module, env=None, timeout=240):
    """Starts ``python -m <module> <rank> <port> <result path>`` for ranks 0 and 1.

    Each process writes its result as JSON to its path; ``port`` is a free port on
    127.0.0.1 for their rendezvous.

    Returns:
        ``(exit codes, results)``.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp_dir:
        paths = [os.path.join(tmp_dir, f"rank{r}.json") for r in range(2)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", module, str(r), str(port), paths[r]],
                env={**os.environ, **(env or {})},
                stdout=subprocess.DEVNULL,
            )
            for r in range(2)
        ]
        codes = [p.wait(timeout=timeout) for p in processes]
        results = []
        for path in paths:
            with open(path) as f:
                results.append(json.load(f))
    return codes, results


def checks_main(checks, process_main):
    """A check module's entry point: with ``rank port path`` arguments, one of the 2
    processes (``process_main``); without, every function of ``checks`` fills one dict,
    printed as JSON."""
    if len(sys.argv) > 1:
        process_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
        return
    out = {}
    for check in checks:
        check(out)
    json.dump(out, sys.stdout)
    sys.stdout.flush()
