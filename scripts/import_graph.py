"""The import graph of keyscope's own modules: no cycle, and dependencies that point one way.

Layers, lowest first: `lib` (helpers every app uses), `organizations`,
`deployments`, `keys`, then `backend` (settings, the project's URLs). A module
may import its own layer and those below it. Every import counts, at module
level and inside functions alike; tests and migrations are left out.

`python scripts/import_graph.py` prints the edges that reach up and any cycle,
and exits 1 when the graph breaks a rule; backend/tests/test_import_graph.py
runs the same checks in the suite.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LAYERS = ("lib", "organizations", "deployments", "keys", "backend")
LEFT_OUT = ("tests", "migrations")

# (importer, imported): the places where a module reaches up the order on purpose, and why.
# Each must still exist, so the list cannot outlive its reasons.
ALLOWED_REACH_UPS: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    """Every module of the layers, by dotted name."""
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((BASE_DIR / package).rglob("*.py")):
            parts = path.relative_to(BASE_DIR).with_suffix("").parts
            if any(part in LEFT_OUT for part in parts):
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported_names(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def edges(known: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) for each import of one of `known` by another."""
    found: set[tuple[str, str]] = set()
    for name, path in known.items():
        for imported in _imported_names(ast.parse(path.read_text(), filename=str(path))):
            # `from keys import crypto` imports keys.crypto; `from keys.models import X`, keys.models.
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(f"{imported}."):
                found.add((name, imported))
    return found


def layer(module: str) -> int:
    return LAYERS.index(module.split(".", 1)[0])


def reach_ups(graph: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(src, dst) for src, dst in graph if layer(src) < layer(dst)}


def cycles(graph: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    successors: dict[str, list[str]] = {}
    for src, dst in sorted(graph):
        successors.setdefault(src, []).append(dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in successors.get(node, []):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(successors):
        if node not in index:
            visit(node)
    return components


def problems() -> list[str]:
    graph = edges(modules())
    found = [f"cycle: {' ↔ '.join(component)}" for component in cycles(graph)]
    up = reach_ups(graph)
    found += [f"reaches up: {src} imports {dst}" for src, dst in sorted(up - set(ALLOWED_REACH_UPS))]
    found += [f"allowed but gone, remove it: {src} → {dst}" for src, dst in sorted(set(ALLOWED_REACH_UPS) - up)]
    return found


def main() -> int:
    graph = edges(modules())
    print(f"{len(modules())} modules, {len(graph)} imports between them")
    for (src, dst), reason in sorted(ALLOWED_REACH_UPS.items()):
        print(f"allowed: {src} → {dst}: {reason}")
    found = problems()
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
