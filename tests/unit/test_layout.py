"""The shape of the code: layers import one way, no import cycles, no file over 450 lines, one search path.

Imports are read from the source with ``ast`` (lazy imports inside functions count too); the cycle check is
networkx's strongly connected components over the module graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "agents", "graph", "service", "tools", "prompts")
#: which top-level packages each layer may import (besides itself)
ALLOWED = {
    "tools": set(),
    "prompts": set(),
    "app": {"tools"},
    "agents": {"app", "tools", "prompts"},
    "graph": {"agents", "app", "tools", "prompts"},
    "service": {"graph", "agents", "app", "tools", "prompts"},
}
#: transports the graph must not know
TRANSPORTS = ("fastapi", "starlette", "uvicorn", "httpx")
MAX_LINES = 450


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def module_graph() -> nx.DiGraph:
    mods = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        for target in imports(path):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # a package's __init__ re-exports; an edge to it says nothing about the modules behind it
            if target and target != name and mods[target].name != "__init__.py":
                graph.add_edge(name, target)
    return graph


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(module_graph()) if len(c) > 1]
    assert cycles == []


@pytest.mark.parametrize("layer", PACKAGES)
def test_layers_import_one_way(layer: str) -> None:
    wrong = []
    for name, path in modules().items():
        if name.split(".")[0] != layer:
            continue
        for target in imports(path):
            top = target.split(".")[0]
            if top in PACKAGES and top != layer and top not in ALLOWED[layer]:
                wrong.append(f"{name} imports {target}")
            if layer == "graph" and top in TRANSPORTS:
                wrong.append(f"{name} imports the transport {target}")
    assert wrong == []


def test_no_file_over_450_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_one_search_function_for_every_way_in() -> None:
    """Only app/search.py calls the index search itself; the CLI, the HTTP route and the Query agent call it."""
    callers = {name for name, path in modules().items() if "tools.search.search" in set(imports(path))}
    assert callers == {"app.search"}
    for adapter in ("service.commands.search", "service.api.search", "agents.query"):
        assert "app.search.search" in set(imports(modules()[adapter])), adapter


def test_the_command_line_starts_without_torch_or_langchain() -> None:
    """Building the CLI (every command's options) loads no model library: `skyscout status` stays quick."""
    import subprocess
    import sys

    code = ("import sys, service.cli; print(sorted(m for m in ('torch', 'open_clip', 'langchain_core', 'langgraph',"
            " 'ray', 'rasterio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
