"""The layers point one way and no module imports another package's private module.

Every import statement is read from the source's syntax tree: those inside functions,
classes and ``if TYPE_CHECKING:`` blocks too.
"""

import ast
import os

import pytest

from tests._layout import LAYERS, modules

MODULES = modules()


def _package(name: str) -> str:
    """The layer package a module belongs to (``seqpipe`` for the root itself)."""
    return max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)


def _imports(name: str, path: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every seqpipe import in ``path``."""
    is_package = os.path.basename(path) == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    found = []
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{anchor}.{node.module}" if node.module else anchor
            else:
                target = node.module
            for alias in node.names:
                # ``from . import name`` imports a module when one has that name.
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else target))
    return [(line, target) for line, target in found if target.split(".")[0] == "seqpipe"]


def _private(target: str) -> bool:
    return any(part.startswith("_") for part in target.split(".")[1:])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_and_stay_public(name):
    own = _package(name)
    rank = LAYERS.index(own)
    wrong = []
    for line, target in _imports(name, MODULES[name]):
        theirs = _package(target)
        if LAYERS.index(theirs) > rank:
            wrong.append(f"line {line}: {target} is in a higher layer ({theirs} > {own})")
        elif theirs != own and theirs != "seqpipe._core" and _private(target):
            wrong.append(f"line {line}: {target} is private to {theirs}")
    assert not wrong, f"{name}: " + "; ".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {
        name: {t for _, t in _imports(name, path) if t in MODULES} for name, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycle = [*trail[trail.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*trail, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])


def test_layers_are_written_in_the_package_docstrings():
    import seqpipe

    order = [seqpipe.__doc__.index(f"`{p}`") for p in LAYERS[1:-1]]
    assert order == sorted(order), seqpipe.__doc__
