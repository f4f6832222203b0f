"""What a worker process imports: a pipeline read in a fresh process, as a worker does."""

import subprocess
import sys

import cloudpickle


def worker_reads(seq, expression: str, modules: list[str], tmp_path) -> str:
    """Runs what an enqueuer worker does (imports ``parallel.worker``, unpickles ``seq``)
    in a fresh process, then prints ``expression`` (on ``seq``) and which of
    ``modules`` got imported; returns that line."""
    (tmp_path / "seq.pkl").write_bytes(cloudpickle.dumps(seq))
    code = (
        "import sys, pickle, seqpipe.parallel.worker; "
        f"seq = pickle.loads(open({str(tmp_path / 'seq.pkl')!r}, 'rb').read()); "
        f"print({expression}, *[m for m in {modules!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()
