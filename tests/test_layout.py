"""The house: sub-packages in the order the data flows, imports that only point back along it, no cycles.

Read from the source (``ast``), imports inside functions included: a lazy import is an import too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "emotion_refinery"

#: The sub-packages of emotion_refinery in import order: a module may import from its own package and those
#: before it. ``errors`` (below everything) and ``api`` (above everything) are the only top-level modules.
LAYERS = ("util", "data", "records", "models", "decision", "outputs", "refine", "methods")
TOP_LEVEL = {"__init__", "errors", "api"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module of the project that ``path`` imports (``from x import y`` counts ``x.y`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("emotion_refinery", "tf_records", "cli")
            and (name in MODULES)}


SOURCES = sorted(p for top in ("emotion_refinery", "tf_records", "cli") for p in (ROOT / top).rglob("*.py"))
MODULES = {module_name(p) for p in SOURCES}
GRAPH = {module_name(p): imports(p) - {module_name(p)} for p in SOURCES}


def layer(module: str) -> int | None:
    """The index of ``module``'s sub-package in :data:`LAYERS`; -1 for errors and the package root."""
    parts = module.split(".")
    if parts[0] != "emotion_refinery":
        return None
    if len(parts) == 1 or parts[1] == "errors":
        return -1
    if parts[1] == "api":
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_top_level_holds_only_the_api_the_errors_and_the_sub_packages():
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert loose == TOP_LEVEL
    assert packages == set(LAYERS)
    for name in LAYERS:  # small packages: one job each
        assert len(list((PACKAGE / name).glob("*.py"))) <= 10, name


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("emotion_refinery")))
def test_imports_point_back_along_the_flow(module):
    mine = layer(module)
    upward = sorted(m for m in GRAPH[module] if m.startswith("emotion_refinery") and layer(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports {upward}"
    assert not [m for m in GRAPH[module] if m.startswith("cli")], f"{module} imports the command line"


def test_tf_records_knows_nothing_of_the_method_and_nothing_imports_cli():
    for module, deps in GRAPH.items():
        if module.startswith("tf_records"):
            assert not [d for d in deps if not d.startswith("tf_records")], module
        if not module.startswith("cli"):
            assert not [d for d in deps if d.startswith("cli")], module


def test_no_import_cycle():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checks_see_an_upward_import():
    """The layer check is not vacuous: a data module importing refine would be caught."""
    assert layer("emotion_refinery.data.audio") < layer("emotion_refinery.refine.rounds")
    assert "emotion_refinery.records.manifest" in GRAPH["emotion_refinery.records.build"]
