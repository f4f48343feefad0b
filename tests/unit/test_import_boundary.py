"""The agent, installed on every host, depends only on the shared layer and the proto; the
controller never reaches into the agent; the shared layer imports neither.

Two checks: a scan of every import statement (including ones inside functions, which a
module-load check would miss), and a fresh interpreter that imports the agent's entry point and
lists what got loaded (which catches an import hidden behind importlib or a re-export)."""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "proto" / "dstack_hybrid" / "shared"
# Each tree and the top-level packages it must not import.
FORBIDDEN = {
    ROOT / "agent": ("controller",),
    ROOT / "controller": ("agent",),
    SHARED: ("agent", "controller"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file; relative imports are left out (they stay inside)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def crossings(tree: Path, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{tree.name}/{path.relative_to(tree)}:{line} imports {module}"
        for path in sorted(tree.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("tree", list(FORBIDDEN), ids=lambda p: p.name)
def test_no_import_crosses_the_boundary(tree: Path) -> None:
    assert crossings(tree, FORBIDDEN[tree]) == []


def test_the_scan_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    tree = tmp_path / "agent"
    tree.mkdir()
    (tree / "m.py").write_text("import os\n\ndef f():\n    from controller.store import Store\n    return Store\n")
    assert crossings(tree, ("controller",)) == ["agent/m.py:4 imports controller.store"]


def test_starting_the_agent_loads_no_controller_module() -> None:
    probe = (
        "import json, sys\n"
        "import agent.main, agent.daemon, agent.simulate, agent.runtime.docker_runtime\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'controller')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# ------------------------------------------------------------- among controller's packages
CONTROLLER = ROOT / "controller"
# The server modules that may import the burst reconciler: the one that builds it (app) and those
# that call it (core attaches volumes and reads its zones; agent_service claims launches).
BURST_USERS = {"server/app.py", "server/core.py", "server/agent_service.py"}


def unit_of(module: str) -> str:
    """The package (or top-level module) of controller a module belongs to: controller.provisioning."""
    return ".".join(module.split(".")[:2])


def package_graph(tree: Path) -> dict[str, dict[str, str]]:
    """unit -> {unit it imports: the first file:line that does}, for imports between different units
    of the tree (TYPE_CHECKING and function-level imports count: a cycle there is still a knot)."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(tree.rglob("*.py")):
        parts = path.relative_to(tree.parent).with_suffix("").parts
        source = unit_of(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        edges = graph.setdefault(source, {})
        for line, module in imported_modules(path):
            if module.split(".")[0] != tree.name or "." not in module:
                continue
            target = unit_of(module)
            if target != source:
                edges.setdefault(target, f"{path.relative_to(tree.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str]:
    """One cycle as its path ["a -> b (a/x.py:3)", "b -> a (b/y.py:7)"], or [] when there is none."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(unit: str) -> list[str]:
        if unit in stack:
            loop = [*stack[stack.index(unit) :], unit]
            return [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(loop)]
        if unit in done:
            return []
        stack.append(unit)
        for target in sorted(graph.get(unit, {})):
            found = visit(target)
            if found:
                return found
        stack.pop()
        done.add(unit)
        return []

    for unit in sorted(graph):
        found = visit(unit)
        if found:
            return found
    return []


def test_controllers_packages_import_each_other_without_a_cycle() -> None:
    assert find_cycle(package_graph(CONTROLLER)) == []


def test_the_cycle_check_names_the_path_with_its_lines(tmp_path: Path) -> None:
    tree = tmp_path / "controller"
    for package, text in {
        "a": "from controller.b.x import X\n",
        "b": "import os\n\n\nfrom controller.c import C\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from controller.a.m import M\n",
        "d": "from controller.a import A\n",
    }.items():
        (tree / package).mkdir(parents=True)
        (tree / package / "__init__.py").write_text("")
        (tree / package / "m.py").write_text(text)
    assert find_cycle(package_graph(tree)) == [
        "controller.a -> controller.b (controller/a/m.py:1)",
        "controller.b -> controller.c (controller/b/m.py:4)",
        "controller.c -> controller.a (controller/c/m.py:3)",
    ]
    (tree / "c" / "m.py").write_text("")
    assert find_cycle(package_graph(tree)) == []


def test_the_burst_reconciler_never_imports_the_server() -> None:
    reaching = [
        f"provisioning/{path.relative_to(CONTROLLER / 'provisioning')}:{line} imports {module}"
        for path in sorted((CONTROLLER / "provisioning").rglob("*.py"))
        for line, module in imported_modules(path)
        if unit_of(module) == "controller.server"
    ]
    assert reaching == []


def test_only_the_server_modules_that_build_or_call_bursting_import_it() -> None:
    users = {
        str(path.relative_to(CONTROLLER))
        for path in sorted((CONTROLLER / "server").rglob("*.py"))
        if any(unit_of(module) == "controller.provisioning" for _, module in imported_modules(path))
    }
    assert users <= BURST_USERS
    others = [
        f"{path.relative_to(CONTROLLER)} imports {module}"
        for path in sorted(CONTROLLER.rglob("*.py"))
        if not path.is_relative_to(CONTROLLER / "server") and not path.is_relative_to(CONTROLLER / "provisioning")
        for _, module in imported_modules(path)
        if unit_of(module) == "controller.provisioning"
    ]
    assert others == []
