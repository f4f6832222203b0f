"""MkDocs hook: lets mkdocstrings find the packages under their import names.

The repository's directories ``pipeline/``, ``sources/``, ``transforms/`` and ``parallel/``
install as ``seqpipe.pipeline`` and so on (setup.cfg's ``package_dir``), a mapping griffe
cannot read. This hook lays out ``build/docs-api/seqpipe/`` as the wheel does, with
symbolic links to the repository's files, and mkdocs.yml points mkdocstrings there.
"""

from __future__ import annotations

import configparser
import os
import shutil

from mkdocs.plugins import event_priority

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGING = os.path.join(ROOT, "build", "docs-api")


def _package_dirs() -> dict[str, str]:
    """``{dotted package: directory}`` from setup.cfg, the root package included."""
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    dirs = {"seqpipe": os.path.join(ROOT, "seqpipe")}
    for line in setup["options"]["package_dir"].strip().splitlines():
        name, _, directory = (part.strip() for part in line.partition("="))
        dirs[name] = os.path.join(ROOT, directory)
    return dirs


def stage() -> str:
    """Builds ``build/docs-api/seqpipe`` and returns ``build/docs-api``."""
    package = os.path.join(STAGING, "seqpipe")
    shutil.rmtree(STAGING, ignore_errors=True)
    os.makedirs(package)
    root = _package_dirs().pop("seqpipe")
    for entry in os.listdir(root):  # __init__.py and _core
        if entry != "__pycache__":
            os.symlink(os.path.join(root, entry), os.path.join(package, entry))
    for name, directory in _package_dirs().items():
        if name != "seqpipe":
            os.symlink(directory, os.path.join(package, name.rpartition(".")[2]))
    return STAGING


# Before mkdocstrings reads its paths.
@event_priority(100)
def on_config(config, **kwargs):
    stage()
    return config
