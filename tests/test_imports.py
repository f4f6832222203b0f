import subprocess
import sys

import pytest


@pytest.mark.timeout(60)
def test_packages_import_without_tensorflow():
    code = (
        "import sys; import pipeline, sources, transforms, parallel; "
        "print('tensorflow' in sys.modules, 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # scikit-image (and scipy behind it) load on first resize, not at import.
    assert out.stdout.split() == ["False", "False"]
