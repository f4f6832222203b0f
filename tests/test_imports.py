"""One import name: ``seqpipe.*``, never shadowed by a user's own modules, nothing else
installed at the top level, and importing it loads no framework."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests._layout import ROOT


@pytest.mark.timeout(60)
def test_packages_import_without_frameworks_or_heavy_libraries():
    code = (
        "import sys; import seqpipe.pipeline, seqpipe.sources, seqpipe.transforms, "
        "seqpipe.parallel; print(*[m in sys.modules for m in "
        "('tensorflow', 'torch', 'jax', 'keras', 'skimage', 'h5py', 'pyarrow')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # scikit-image (and scipy behind it) load on first resize, h5py and pyarrow with the
    # first source that needs them.
    assert out.stdout.split() == ["False"] * 7


@pytest.mark.timeout(300)
def test_the_wheel_installs_seqpipe_and_nothing_else_at_the_top_level(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info/ into the source tree.
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("seqpipe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"seqpipe"}
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert packages == {
        "seqpipe",
        "seqpipe/_core",
        "seqpipe/pipeline",
        "seqpipe/sources",
        "seqpipe/transforms",
        "seqpipe/parallel",
    }
    assert "seqpipe/parallel/worker.py" in names


USER_SCRIPT = """
import numpy as np

import pipeline
import transforms
from seqpipe.parallel import OrderedEnqueuer
from seqpipe.pipeline import Pipeline
from seqpipe.transforms import Normalize

if __name__ == "__main__":
    seq = Pipeline(np.arange(40.0).reshape(20, 2), batch_size=8) | Normalize()
    for method in ("forkserver", "spawn"):
        with OrderedEnqueuer(seq, use_multiprocessing=True, start_method=method) as enqueuer:
            enqueuer.start(workers=2)
            rows = sum(len(b) for b in enqueuer.iter_epoch())
        print(method, rows)
    print(transforms.MARK, pipeline.MARK)
"""


@pytest.mark.timeout(120)
def test_a_project_with_its_own_transforms_and_pipeline_modules_shadows_nothing(tmp_path):
    # Both would be found first on sys.path (the script's directory): seqpipe must not
    # import them, in this process or in its worker processes, and the user's own
    # `import transforms` must get theirs.
    (tmp_path / "transforms.py").write_text("MARK = 'user transforms'\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("MARK = 'user pipeline'\n")
    (tmp_path / "train.py").write_text(textwrap.dedent(USER_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:3] == [
        "forkserver 20",
        "spawn 20",
        "user transforms user pipeline",
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_as_torch_and_as_jax_without_their_framework_name_the_extra(framework):
    # ``sys.modules[name] = None`` makes ``import name`` raise ImportError, as when the
    # package is not installed.
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        "import numpy as np\n"
        "from seqpipe.pipeline import Pipeline\n"
        "try:\n"
        f"    getattr(Pipeline(np.arange(4), batch_size=2), 'as_{framework}')()\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"pip install 'seqpipe[{framework}]'" in out.stdout, out.stdout + out.stderr
