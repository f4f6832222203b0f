"""Every code block of README.md and docs/*.md runs, as it is written.

A page's ``python`` blocks run in order, in one namespace (``__name__`` is
``"__main__"``), in a temporary directory of the page's own; ``pycon`` blocks run there
as doctests, so the outputs they show are checked. Two HTML comments steer it, and
neither is rendered:

- ``<!-- docs-test: setup`` ... ``-->`` around a ``python`` block: a hidden block that
  runs in its place, usually to write the small files the examples read
  (``tests/_docs_data.py``);
- ``<!-- docs-test: skip: REASON -->`` on the line before a block: the block is not
  run, and its test item is reported as skipped with that reason (blocks that need
  TensorFlow, a GPU, a bucket or several machines).

Each block is one test item, ``<page>:<line>``; running one runs the blocks before it
on the same page first.
"""

from __future__ import annotations

import dataclasses
import doctest
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)")
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>.+?)\s*-->")
_SETUP = re.compile(r"<!--\s*docs-test:\s*setup\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str  # "python" or "pycon"
    code: str
    hidden: bool
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The ``python`` and ``pycon`` blocks of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    found, i, hidden = [], 0, False
    while i < len(lines):
        line = lines[i]
        if _SETUP.search(line):
            hidden = True
        elif hidden and line.strip() == "-->":
            hidden = False
        opening = _FENCE.match(line)
        if not opening:
            i += 1
            continue
        indent, lang = len(opening["indent"]), opening["lang"]
        end = i + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        if lang in ("python", "pycon"):
            body = "\n".join(text[indent:] for text in lines[i + 1 : end])
            before = lines[i - 1] if i else ""
            skip = _SKIP.search(before)
            page = str(path.relative_to(ROOT))
            found.append(Block(page, i + 1, lang, body, hidden, skip and skip["reason"]))
        i = end + 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]


class PageRun:
    """The namespace and directory one page's blocks share, and how far they ran."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.namespace: dict = {"__name__": "__main__"}
        self.done = 0  # blocks of the page already run
        self.failed: str | None = None

    def run(self, block: Block) -> None:
        previous = os.getcwd()
        os.chdir(self.directory)
        try:
            if block.lang == "python":
                # Blank lines in front, so tracebacks give the Markdown file's lines.
                code = "\n" * block.line + block.code
                exec(compile(code, str(ROOT / block.page), "exec"), self.namespace)
            else:
                self._doctest(block)
        finally:
            os.chdir(previous)

    def _doctest(self, block: Block) -> None:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.code, self.namespace, block.id, block.page, block.line)
        flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=flags)
        runner.run(test, out=report.append, clear_globs=False)
        self.namespace.update(test.globs)  # a DocTest runs in a copy of its globals
        if runner.failures:
            raise AssertionError("".join(report))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_code_block_runs(block, runs, tmp_path_factory):
    if block.skip:
        pytest.skip(f"{block.id}: {block.skip}")
    page_blocks = [b for b in ALL if b.page == block.page]
    name = re.sub(r"\W", "_", block.page)
    run = runs.setdefault(block.page, PageRun(tmp_path_factory.mktemp(name)))
    position = page_blocks.index(block)
    while run.done <= position:
        earlier = page_blocks[run.done]
        if run.failed:
            pytest.fail(f"an earlier block of {block.page} failed: {run.failed}")
        run.done += 1
        if earlier.skip:
            continue
        try:
            run.run(earlier)
        except BaseException:
            run.failed = earlier.id
            raise


def test_the_layout_page_names_every_module():
    from tests._layout import DIRECTORIES, modules

    text = (ROOT / "docs" / "layout.md").read_text()
    for name, path in modules().items():
        if os.path.basename(path) != "__init__.py":
            assert f"| `{os.path.basename(path)}` |" in text, f"docs/layout.md misses {name}"
    for package, directory in DIRECTORIES.items():
        assert f"`{os.path.relpath(directory, ROOT)}/`" in text, package


def test_every_page_is_found_and_blocks_are_well_formed():
    assert len(PAGES) > 10
    for block in ALL:
        assert block.code.strip(), f"{block.id}: an empty block"
        assert not (block.hidden and block.skip), f"{block.id}: a skipped setup block"
