"""The packages form layers: each imports only from the layers below it (docs/architecture.md).

Imports under ``if TYPE_CHECKING:`` are type hints only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom first. A module may import from its own layer's package and from any layer below.
LAYERS: list[tuple[str, ...]] = [
    ("hub.kernel",),
    ("hub.store",),
    ("connectors",),
    ("hub.config",),
    ("hub.jobs",),
    ("hub.subscribers",),
    ("hub.kpis",),
    ("hub.rules",),
    ("hub.outbound",),
    ("hub.segments",),
    ("hub.ingest",),
    ("hub.runtime", "hub.logs", "hub.queries", "hub.status", "hub.tasks", "hub.simulate"),
    ("hub.scheduler", "hub.web", "hub.cli", "hub.migrations", "hub"),
]


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), i
    assert found is not None, f"{module} belongs to no layer: add it to LAYERS"
    return found


def _package_of(module: str, names: tuple[str, ...]) -> str:
    return max((n for n in names if module == n or module.startswith(n + ".")), key=len)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import that runs (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from hub import jobs` imports the module hub.jobs
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if (ROOT / sub.replace(".", "/")).exists()
                              or (ROOT / (sub.replace(".", "/") + ".py")).exists() else node.module))
    return [(line, m) for line, m in found if m.split(".")[0] in ("hub", "connectors")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_every_import_points_down_the_layers():
    wrong = []
    for path in sorted([*ROOT.glob("hub/**/*.py"), *ROOT.glob("connectors/**/*.py")]):
        if "migrations" in path.parts:
            continue
        me = module_name(path)
        mine = layer_of(me)
        for line, target in imports(path):
            theirs = layer_of(target)
            same_package = theirs == mine and _package_of(me, LAYERS[mine]) == _package_of(target, LAYERS[mine])
            if theirs > mine or (theirs == mine and not same_package and mine < len(LAYERS) - 2):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {me} imports {target} (a layer above or beside it)")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles_between_packages():
    """Within a layer's package, modules may import each other, but never in a circle."""
    graph: dict[str, set[str]] = {}
    for path in [*ROOT.glob("hub/**/*.py"), *ROOT.glob("connectors/**/*.py")]:
        if "migrations" in path.parts:
            continue
        me = module_name(path)
        graph.setdefault(me, set()).update(t for _, t in imports(path) if t != me and not me.startswith(t + "."))

    seen: dict[str, int] = {}  # 1 visiting, 2 done
    circles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if seen.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in seen:
                visit(nxt, trail + [nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert not circles, "\n".join(circles)
