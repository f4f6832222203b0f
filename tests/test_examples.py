import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "script, expected",
    [
        ("quickstart.py", ["512 samples, each exactly once", "final loss"]),
        ("multi_worker.py", ["workers exited with [0, 0]"]),
        ("custom_transform.py", ["loaded under CustomObjectScope: 8 identical batches"]),
        ("image_folder.py", ["images per class [20, 20, 20]"]),
    ],
)
def test_example_runs_as_written_in_the_readme(tmp_path, script, expected):
    args = [sys.executable, os.path.join(ROOT, "examples", script)]
    if script == "custom_transform.py":
        args.append(str(tmp_path))
    out = subprocess.run(args, capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(text in out.stdout for text in expected), out.stdout
