"""The agent, installed on every host, depends only on the shared layer and the proto; the
controller never reaches into the agent; the shared layer imports neither.

Two checks: a scan of every import statement (including ones inside functions, which a
module-load check would miss), and a fresh interpreter that imports the agent's entry point and
lists what got loaded (which catches an import hidden behind importlib or a re-export)."""

from __future__ import annotations

import ast
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
