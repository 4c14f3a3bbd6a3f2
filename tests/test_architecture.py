"""The shape of the code: arrows one way (capture → catalog ← encode / sync / services ←
cli, web), no import cycles between the project's modules, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "appliance"
MAX_LINES = 420   # "~400": a module past this wants splitting
# What each layer may not import (anywhere in the module, lazy imports included).
FORBIDDEN = {
    "appliance.capture": ("appliance.encode", "appliance.sync", "appliance.services",
                          "appliance.cli"),
    "appliance.catalog": ("appliance.capture", "appliance.encode", "appliance.sync",
                          "appliance.services", "appliance.cli"),
    "appliance.encode": ("appliance.capture", "appliance.sync", "appliance.services",
                         "appliance.cli"),
    # Sync reads the catalog and sends files; it never records, renders or serves.
    "appliance.sync": ("appliance.capture", "appliance.encode", "appliance.services",
                       "appliance.cli", "appliance.web"),
    "appliance.services": ("appliance.cli", "appliance.web"),
    # The web views are a skin over the application layer, like the CLI.
    "appliance.web": ("appliance.capture", "appliance.encode", "appliance.cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports (a `from package import module` counts the
    module itself, not the package)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("appliance")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("appliance"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_the_arrows_go_one_way(layer: str) -> None:
    wrong = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                   if name == layer or name.startswith(layer + ".")
                   for target in targets if target.startswith(FORBIDDEN[layer]))
    assert wrong == []


def test_capture_does_not_import_the_encoder() -> None:
    capture = [n for n in GRAPH if n.startswith("appliance.capture")]
    assert len(capture) > 10, "the walk found the capture package"
    assert not [n for n in capture for t in GRAPH[n] if t.startswith("appliance.encode")]


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert cycles == []


def test_a_cycle_would_be_found() -> None:
    """The walk itself works: a module that imports its importer is seen."""
    assert "appliance.catalog.db" in GRAPH["appliance.catalog.jobs"]
    assert "appliance.errors" in GRAPH["appliance.layout"]


def test_modules_are_small() -> None:
    big = {name: n for name, p in MODULES.items()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_ffmpeg_is_started_in_one_place() -> None:
    """Every child process goes through ffmpeg_tool (bounded stderr, own session,
    priority, terminate → wait → kill); the operating system's tools (system_tool: nmcli,
    timedatectl, the shutdown command) and the demo's services (supervisor) are the others."""
    allowed = {"appliance.ffmpeg_tool", "appliance.system_tool", "appliance.supervisor"}
    starters = sorted(name for name, path in MODULES.items()
                      if any(call in path.read_text() for call in
                             ("subprocess.Popen(", "subprocess.run(", "os.system(",
                              "subprocess.check_output(", "subprocess.call(")))
    assert set(starters) <= allowed, starters
    assert "appliance.ffmpeg_tool" in starters


def test_ffprobe_answers_are_read_in_one_place() -> None:
    readers = sorted(name for name, path in MODULES.items()
                     if '"-print_format", "json"' in path.read_text())
    assert readers == ["appliance.probe"]
