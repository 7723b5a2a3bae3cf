"""The shape of the code: no import circles, each package importing only the layers below it.

Read from the source (``ast``), not from what happens to be loaded: every import counts, at the
top of a module or inside a function, except those under ``if TYPE_CHECKING:``. The package
``herald`` itself (its ``__init__``) is the public facade: it imports the producer lazily and is
not part of the layers.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = {"herald.config", "herald.clock", "herald.models", "herald.instruments", "herald.periodic"}
"""Modules every package may import: the settings, the clock, the wire format, the counters, the
loop of the long-running helpers."""

LAYERS: list[tuple[str, ...]] = [
    ("values",),
    ("core",),
    ("display",),
    ("rendering", "state"),
    ("access", "holds", "channels"),
    ("guards", "intake", "ledger", "routing"),
    ("delivery",),
    ("ops",),
    ("api", "cli", "worker"),
]
"""herald's layers, lowest first: a package may import the packages of the layers below its own
(and not its neighbours on its own layer)."""
ALLOWED: dict[str, set[str]] = {
    package: {below for lower in LAYERS[:depth] for below in lower}
    for depth, layer in enumerate(LAYERS)
    for package in layer
}
"""What each package may import. ``herald.cli`` starts ``herald.api`` by name (uvicorn's factory
string), never by import; the worker app is never imported by the library."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base, prefix in ((ROOT / "src", ""), (ROOT, "")):
        folder = base / "herald" if prefix == "" and base.name == "src" else base / "worker"
        for path in folder.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """The herald and worker modules ``name`` imports."""
    out: set[str] = set()

    def resolve(target: str) -> None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    resolve(alias.name)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    resolve(full if full in MODULES else child.module)
            visit(child)

    visit(ast.parse(path.read_text("utf-8")))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(module: str) -> str:
    """The package (layer) of a module: ``herald.delivery.pipeline`` -> ``delivery``."""
    if module in CORE:
        return "core"
    if module.startswith("worker"):
        return "worker"
    return module.split(".")[1]


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    return found


def test_the_graph_is_read_from_every_module() -> None:
    assert {"herald.delivery.pipeline", "herald.state.store", "worker.tasks"} <= set(MODULES)
    assert "herald.state.store" in GRAPH["herald.delivery.pipeline"]


def test_no_module_imports_itself_back_through_others() -> None:
    assert _cycles() == []


def test_every_package_imports_only_the_layers_below_it() -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module != "herald"
        for target in targets
        if target != "herald"
        and layer(target) != layer(module)
        and layer(target) not in ALLOWED[layer(module)]
    )
    assert wrong == []


def test_every_package_is_placed_in_the_layers() -> None:
    packages = {layer(m) for m in MODULES if m != "herald"}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


def test_the_library_never_imports_the_worker_app() -> None:
    assert [
        m
        for m, targets in GRAPH.items()
        if m.startswith("herald") and any(t.startswith("worker") for t in targets)
    ] == []


@pytest.mark.parametrize("module", ["herald", "herald.clock", "herald.config", "herald.models"])
def test_importing_the_core_loads_neither_celery_nor_redis(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "heavy = ('celery', 'kombu', 'redis', 'fastapi'); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(','.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_the_claims_verdicts_are_the_same_names_in_the_lua_and_in_python() -> None:
    from herald.delivery.batched import ClaimVerdict

    lua = (ROOT / "src" / "herald" / "state" / "lua" / "claim.lua").read_text("utf-8")
    code = "\n".join(line.split("--")[0] for line in lua.splitlines())
    answered = set(re.findall(r"return \{'(\w+)'", code)) | set(re.findall(r"local out = \{'(\w+)'", code))
    assert answered == {v.value for v in ClaimVerdict}
