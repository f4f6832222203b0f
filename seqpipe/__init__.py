"""seqpipe: exactly-once, shared-memory data pipelines for training models.

The public API lives in four packages, each a layer that imports only the layers below
it (never above, not even inside a function; ``tests/test_layers.py`` checks every
import statement):

1. `seqpipe.transforms`: pure array kernels, the `Transform` protocol and
   ``source | transform``;
2. `seqpipe.sources`: array-like sources over stored samples (HDF5, Parquet, images,
   downloads);
3. `seqpipe.pipeline`: the epoch plan, `Sequence` and `Pipeline`, configs, summaries,
   and the decode-once cache on top of them;
4. `seqpipe.parallel`: running pipelines: the enqueuer and its workers, the framework
   adapters (``seq.as_keras()``, ``seq.as_tf_dataset()``) and the trainer.

`seqpipe._core` holds what several layers share and imports none of them. A method of a
lower layer whose work belongs to a higher one (``seq.as_keras()``, ``seq | t`` on a
`Sequence`, ``Pipeline.cache``) is a thin method whose body the higher layer provides
(`seqpipe._core.hooks`); importing ``seqpipe`` imports `seqpipe.parallel` (cheaply: its
exports load on first use), so those bodies are always in place.

TensorFlow, torch and JAX are imported only by the code that uses them.
"""

import pkgutil

# A checkout's ``seqpipe/`` holds only this file and ``_core``; the packages are mapped
# in by setup.cfg's package_dir. Run from a checkout's root over a wheel install, this
# directory would hide the installed packages without this (a pkgutil-style namespace).
__path__ = pkgutil.extend_path(__path__, __name__)

from . import parallel

__version__ = "0.2.0"

__all__ = ["__version__", "parallel"]
