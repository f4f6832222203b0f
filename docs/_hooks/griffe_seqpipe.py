"""Griffe extension: what the API reference needs to read seqpipe's docstrings as they are.

- Lazy exports. ``seqpipe.sources`` and ``seqpipe.parallel`` import most public names
  on first use, through ``__getattr__, __dir__ = lazy_exports(__name__, _LAZY)``
  (PEP 562, ``seqpipe/_core/lazy.py``), so a static reader sees only their ``__all__``.
  For each ``name: ".module"`` of a package's ``_LAZY`` dict, the package gets the
  member ``name`` as an alias of ``package.module.name``, as ``from .module import name``
  would give it.
- Functions named like their module. ``from .normalize import normalize`` binds the
  package's ``normalize`` to the function, but a static reader keeps the submodule
  under that name; for a name of ``__all__`` bound to a submodule that defines the same
  name, the package's member becomes an alias of that definition.
- ``Example:`` sections. The docstrings follow Keras (one ``Example:`` section); the
  Google-style parser reads only ``Examples:`` as doctest code and would render the
  other as Markdown prose, so the heading is read as ``Examples:``.
"""

from __future__ import annotations

import ast
import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class SeqpipeDocstrings(griffe.Extension):
    def on_module_members(self, *, node, mod, agent, **kwargs) -> None:
        if not isinstance(node, ast.Module):
            return
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and [getattr(t, "id", None) for t in statement.targets] == ["_LAZY"]
                and isinstance(statement.value, ast.Dict)
            ):
                for name, module in ast.literal_eval(statement.value).items():
                    target = f"{mod.path}.{module.lstrip('.')}.{name}"
                    mod.set_member(name, griffe.Alias(name, target, parent=mod))

    def on_package(self, *, pkg, **kwargs) -> None:
        for module in [pkg, *pkg.modules.values()]:
            for name in module.exports or ():
                member = module.members.get(name)
                if member is not None and member.is_module and name in member.members:
                    target = f"{member.path}.{name}"
                    module.set_member(name, griffe.Alias(name, target, parent=module))

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
