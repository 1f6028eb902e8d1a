"""
No import cycles between kgateway's packages.

A package here is a subpackage of kgateway (C{kgateway.cluster}) or one of
its top-level modules (C{kgateway.config}).  Every module-level import
counts, those under C{if TYPE_CHECKING:} too (a cycle of types is still a
cycle for the reader); an import inside a function does not (that is how a
plugin is discovered at run time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import kgateway

#: Cycles that another part of the re-cut removes, each with who does.  The
#: test fails while one is still listed after it is gone, so the list empties.
KNOWN: dict[frozenset[str], str] = {}


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for statement in body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            yield statement
        elif isinstance(statement, ast.If | ast.Try | ast.With | ast.ClassDef):
            for block in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(statement, block, []))
            for handler in getattr(statement, "handlers", []):
                yield from _module_level(handler.body)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph(root: Path, top: str = "kgateway") -> dict[str, set[str]]:
    """Which of C{top}'s packages import which, from the sources under C{root}/C{top}."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / top).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        module = ".".join(parts)
        if module == top:
            continue
        package = _package(module)
        graph.setdefault(package, set())
        for statement in _module_level(ast.parse(path.read_text()).body):
            if isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
            elif statement.level:
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - statement.level + 1]
                names = [".".join([*base, *([statement.module] if statement.module else [])])]
            else:
                names = [statement.module or ""]
            for name in names:
                if name.startswith(top + ".") and _package(name) != package:
                    graph[package].add(_package(name))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class LayeringTests(SynchronousTestCase):
    def test_no_import_cycle_between_packages(self) -> None:
        root = Path(kgateway.__file__).parent.parent
        found = cycles(package_graph(root))
        unexpected = [sorted(c) for c in found if c not in KNOWN]
        self.assertEqual(unexpected, [], "import cycles between kgateway's packages")
        gone = [why for known, why in KNOWN.items() if known not in found]
        self.assertEqual(gone, [], "remove these from KNOWN: the cycle is gone")


class GraphTests(SynchronousTestCase):
    """The graph the layering test reads, on a small package of its own."""

    def package(self, files: dict[str, str]) -> Path:
        root = Path(self.mktemp())
        for name, text in files.items():
            path = root / "top" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    def test_what_counts(self) -> None:
        root = self.package(
            {
                "__init__.py": "",
                "a/__init__.py": "from top.b import thing\n",
                "a/inner.py": "from ..c import x\nfrom . import sibling\n",
                "b.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from top.a import T\n"
                    "def later():\n    import top.d\n"
                ),
                "c.py": "import top.b\n",
                "d.py": "",
            }
        )
        graph = package_graph(root, "top")
        self.assertEqual(
            graph,
            {
                "top.a": {"top.b", "top.c"},
                "top.b": {"top.a"},
                "top.c": {"top.b"},
                "top.d": set(),
            },
        )
        self.assertEqual(cycles(graph), [frozenset({"top.a", "top.b", "top.c"})])

    def test_no_cycle(self) -> None:
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": set()}), [])
