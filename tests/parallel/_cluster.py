"""Two worker processes on 127.0.0.1 for MultiWorkerMirroredStrategy tests."""

import json
import socket
import subprocess


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(args, env, cwd, timeout, worker_env=lambda index: {}):
    """Runs ``args`` as worker 0 and worker 1 of a fresh cluster; returns the processes
    (finished) and their stderr. A peer that never joins cannot outlive ``timeout``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(
            subprocess.Popen(
                [part.format(index=index) for part in args],
                cwd=cwd,
                env={**env, "TF_CONFIG": json.dumps(config), **worker_env(index)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        errors = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    return procs, errors
