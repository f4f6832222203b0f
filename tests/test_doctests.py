"""Every docstring example of the library, run as a test, found by import name.

pytest's ``--doctest-modules`` imports a file by its path, which would load
``pipeline/plan.py`` as a top-level ``pipeline.plan`` instead of ``seqpipe.pipeline.plan``.
"""

import doctest
import importlib

import pytest

from tests._layout import modules


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in modules():
        for test in finder.find(importlib.import_module(name), name):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("test", list(_examples()))
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    globs = dict(test.globs)
    test.globs = globs
    try:
        runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
    finally:
        globs.clear()
    assert runner.failures == 0
