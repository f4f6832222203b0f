import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args, python_options=()):
    command = [sys.executable, *python_options, os.path.join(ROOT, "examples", script), *args]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.mark.timeout(180)
def test_the_quickstart_proves_its_promises_without_a_warning():
    # -W default shows every Python warning once; the quickstart must emit none, and
    # TensorFlow's C++ start-up lines must not reach the terminal either.
    out = _run("quickstart.py", python_options=("-W", "default"))
    assert out.stderr == "", out.stderr[-3000:]
    lines = out.stdout
    assert "delivered 3,072 samples; every one of the 3,072 once (3,072), none twice (0)" in (lines)
    assert "with 0 workers and with 2 worker processes are identical" in lines
    resume = re.search(
        r"resumed on 2 shards of batch 48: (\S+) more, (\d+) repeated, (\d+) missing", lines
    )
    assert resume and resume.groups() == ("2,752", "0", "0"), lines
    epochs = re.findall(r"^\s+(\d+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s+(\d+)%$", lines, re.M)
    assert [int(e[0]) for e in epochs] == [0, 1, 2, 3], lines
    assert float(epochs[-1][2]) >= 0.9, lines  # validation accuracy of the last epoch
    accuracy = float(re.search(r"validation loss [\d.]+, accuracy ([\d.]+)", lines).group(1))
    assert accuracy >= 0.9
    assert "Bottleneck: Resize" in lines and "training:      on [" in lines
    # The profile's advice applied: with the resize cached, it is no longer the bottleneck.
    after = re.search(r"^cache: .* now [\d.]+ batches/s, bottleneck (\S+)", lines, re.M)
    assert after and not after.group(1).startswith("Resize"), lines


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "script, expected",
    [
        ("multi_worker.py", ["workers exited with [0, 0]"]),
        ("custom_transform.py", ["loaded under CustomObjectScope: 8 identical batches"]),
        ("image_folder.py", ["images per class [20, 20, 20]"]),
    ],
)
def test_example_runs_as_written_in_the_readme(tmp_path, script, expected):
    out = _run(script, *([str(tmp_path)] if script == "custom_transform.py" else []))
    assert all(text in out.stdout for text in expected), out.stdout
