"""Where seqpipe's modules are: the installed names and the repository's files."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lowest first: a package may import only packages at or below its own rank.
LAYERS = ("seqpipe._core", "seqpipe.transforms", "seqpipe.sources", "seqpipe.pipeline")
LAYERS += ("seqpipe.parallel", "seqpipe")
# Each package's directory in the repository (setup.cfg's package_dir).
DIRECTORIES = {
    "seqpipe": os.path.join(ROOT, "seqpipe"),
    "seqpipe._core": os.path.join(ROOT, "seqpipe", "_core"),
    "seqpipe.transforms": os.path.join(ROOT, "transforms"),
    "seqpipe.sources": os.path.join(ROOT, "sources"),
    "seqpipe.pipeline": os.path.join(ROOT, "pipeline"),
    "seqpipe.parallel": os.path.join(ROOT, "parallel"),
}


def modules() -> dict[str, str]:
    """Every module of the distribution: dotted name -> file path."""
    found = {}
    for package, directory in DIRECTORIES.items():
        for entry in sorted(os.listdir(directory)):
            if entry.endswith(".py"):
                stem = entry[:-3]
                name = package if stem == "__init__" else f"{package}.{stem}"
                found[name] = os.path.join(directory, entry)
    return found
