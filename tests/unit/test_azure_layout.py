"""The Azure backend stays a package of small parts (issue 13): one job a module, none grown past
~300 lines, none reaching into the server or the burst reconciler, and the SDK's clients and
credential made in one place (sdk.py) and handed to the parts, so each can be built alone."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "controller" / "backends" / "azure"
PARTS = {"__init__", "backend", "cache", "catalog", "compute", "disks", "errors", "images", "network", "pricing", "sdk"}
MAX_LINES = 300
FORBIDDEN = ("controller.server", "controller.burst")
SDK_CONSTRUCTORS = {"ComputeManagementClient", "NetworkManagementClient", "ClientSecretCredential",
                    "DefaultAzureCredential"}  # fmt: skip


def sources() -> dict[str, str]:
    """Every module of the package by name; the named parts first, so a missing one is an error."""
    stems = PARTS | {path.stem for path in PACKAGE.glob("*.py")}
    return {stem: (PACKAGE / f"{stem}.py").read_text() for stem in sorted(stems)}


def modules() -> dict[str, ast.Module]:
    return {stem: ast.parse(text, stem) for stem, text in sources().items()}


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_backend_is_a_package_of_the_named_parts_and_the_old_modules_are_gone() -> None:
    assert {path.stem for path in PACKAGE.glob("*.py")} == PARTS
    assert not (PACKAGE.parent / "azure.py").exists() and not (PACKAGE.parent / "azure_images.py").exists()


def test_no_part_is_over_the_line_limit() -> None:
    long = {stem: n for stem, text in sources().items() if (n := len(text.splitlines())) > MAX_LINES}
    assert long == {}


def test_no_part_imports_the_server_or_the_burst_reconciler() -> None:
    reaching = {stem: sorted(n for n in imported(tree) if n.startswith(FORBIDDEN)) for stem, tree in modules().items()}
    assert {stem: names for stem, names in reaching.items() if names} == {}


def test_only_sdk_py_makes_the_sdk_clients_and_credential() -> None:
    makers = {
        stem
        for stem, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SDK_CONSTRUCTORS
    }
    assert makers == {"sdk"}
