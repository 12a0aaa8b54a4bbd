"""The package's modules import one another without a cycle, counting every import:
at module level, inside functions (deferred) and under ``if TYPE_CHECKING``.

A deferred import that closes a cycle works at run time but hides a dependency
that goes both ways; each shared piece gets its own lower module instead.  An
import of a submodule does not count as an import of its parent package's
``__init__`` (Python only needs the parent to exist, not to have finished), but
``from pkg import name`` of a name defined in ``pkg/__init__.py`` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import arrayloss

ROOT = Path(arrayloss.__file__).parent
PACKAGE = "arrayloss"


def _module_names() -> dict[str, Path]:
    """``{dotted name: path}`` for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _module_names()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    """The absolute name ``from <level dots><target> import ...`` means in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its code."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node.level, node.module)
            if source not in MODULES:
                continue
            submodules = {f"{source}.{a.name}" for a in node.names}
            found |= submodules & MODULES.keys()
            if submodules - MODULES.keys():  # a name defined in ``source`` itself
                found.add(source)
    found.discard(module)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    """The scan finds the imports it must: deferred, relative at two levels,
    ``from . import submodule`` and absolute (else an empty graph would pass)."""
    graph = {m: imports_of(m) for m in MODULES}
    assert sum(map(len, graph.values())) > 100
    assert "arrayloss._xp" in graph["arrayloss._api"]  # from . import _xp
    assert "arrayloss._errors" in graph["arrayloss.cli"]  # deferred, from .. import
    assert "arrayloss.cli._engine" in graph["arrayloss.cli._dask_eval"]
    assert "arrayloss._gradcheck" in graph["arrayloss"]  # the package's __init__


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
