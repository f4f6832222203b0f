"""What SIGKILLed processes leave behind is removed by the next pool or the next save
(NOTE [ Leftovers of killed processes ] in parallel/leftovers.py)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from seqpipe.parallel.backup import Backup, Saved
from seqpipe.parallel.shm import SHM_DIR_ENV, SharedArrayPool, leftover_segments

from .test_enqueuer import ROOT, _alive, _start_child, _wait_until


@pytest.mark.timeout(90)
def test_a_new_pool_removes_the_segments_of_killed_runs_and_keeps_live_ones(tmp_path, monkeypatch):
    # Outside /dev/shm the resource tracker cannot unlink them: a SIGKILLed run leaks.
    monkeypatch.setenv(SHM_DIR_ENV, str(tmp_path))
    killed, killed_prefix, killed_workers = _start_child()
    live, live_prefix, _ = _start_child()
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=30)
        assert _wait_until(lambda: not any(_alive(p) for p in killed_workers))
        leaked = leftover_segments(killed_prefix, str(tmp_path))
        assert leaked and leftover_segments(live_prefix, str(tmp_path))
        # Not ours, nor a segment: left alone.
        (tmp_path / "seqpipe_notes.txt").write_text("keep")
        pool = SharedArrayPool()
        try:
            assert leftover_segments(killed_prefix, str(tmp_path)) == []
            assert leftover_segments(live_prefix, str(tmp_path))  # its owner still runs
            assert (tmp_path / "seqpipe_notes.txt").read_text() == "keep"
        finally:
            pool.close()
    finally:
        for child in (killed, live):
            child.kill()
            child.communicate(timeout=30)


def _saved(weights):
    """A backup's content with ``weights`` as the model's only weight array."""
    topology = {"workers": 1, "replicas": 1, "batch_size": 2}
    return Saved(1, 2, None, topology, [0.5], 4.0, 1, [weights], [np.ones(3)], [])


def _state(size):
    return _saved(np.arange(size, dtype=np.float64))


# Saves a 160 MB backup over and over, until it is killed.
_SAVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from seqpipe.parallel.backup import Backup
    from tests.parallel.test_leftovers import _saved
    backup = Backup({directory!r}, 1, {{"model": "m"}}, chief=True)
    state = _saved(np.zeros(20_000_000))
    while True:
        backup.save(state)
    """
)


def _temporaries(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(".backup-"))


@pytest.mark.timeout(120)
def test_the_next_save_removes_the_temporary_file_of_a_killed_save(tmp_path):
    left = []
    for _ in range(10):  # killed between two saves, nothing is left: kill again
        saver = subprocess.Popen(
            [sys.executable, "-c", _SAVER.format(root=ROOT, directory=str(tmp_path))]
        )
        try:
            assert _wait_until(lambda: _temporaries(tmp_path), 60)
            saver.send_signal(signal.SIGKILL)
        finally:
            saver.kill()
            saver.wait(30)
        left = _temporaries(tmp_path)
        if left:
            break
    assert left, "no save was killed half-way"
    backup = Backup(tmp_path, 1, {"model": "m"}, chief=True)
    # A live writer's temporary file (this process's pid) is not a leftover.
    mine = tmp_path / f".backup-{socket.gethostname()}-{os.getpid()}-x.tmp"
    mine.write_bytes(b"being written")
    backup.save(_state(10))
    assert _temporaries(tmp_path) == [mine.name]
    assert backup.load().weights[0].tolist() == list(range(10))
    # Another host's, or an older naming's, goes once it is an hour old.
    old = tmp_path / ".backup-abc123.tmp"
    old.write_bytes(b"")
    backup.save(_state(3))
    assert old.exists()
    hour_ago = time.time() - 3700
    os.utime(old, (hour_ago, hour_ago))
    backup.save(_state(3))
    assert _temporaries(tmp_path) == [mine.name]
