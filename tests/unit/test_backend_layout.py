"""Each cloud backend stays a package of small parts (issue 13), split as Karpenter splits its
providers: one job a module, none grown past ~300 lines, none reaching into the server or the
burst reconciler, and the SDK's clients and credentials made in one place (sdk.py) and handed to
the parts, so each can be built alone. The TTL cache is one module both share."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BACKENDS = Path(__file__).resolve().parents[2] / "controller" / "backends"
PARTS = {
    "aws": {"__init__", "backend", "catalog", "compute", "errors", "images", "pricing", "sdk", "volumes"},
    "azure": {"__init__", "backend", "catalog", "compute", "disks", "errors", "images", "network", "pricing", "sdk"},
}
# Modules the split replaced: none may come back beside the package.
OLD_MODULES = {"aws": ["aws.py"], "azure": ["azure.py", "azure_images.py", "azure/cache.py"]}
MAX_LINES = 300
FORBIDDEN = ("controller.server", "controller.provisioning")
# What makes an SDK client or credential, by the name called (a function or a method).
SDK_MAKERS = {
    "aws": {"Session", "client", "resource"},
    "azure": {"ComputeManagementClient", "NetworkManagementClient", "ClientSecretCredential", "DefaultAzureCredential"},
}
# The SDK's top-level packages, and the parts that may import each: the clients are made in
# sdk.py; errors.py reads the SDK's exceptions; Azure's parts read its typed models too.
SDK_IMPORTERS = {"aws": {"boto3": {"sdk"}, "botocore": {"sdk", "errors"}}}


def sources(provider: str) -> dict[str, str]:
    """Every module of the package by name; the named parts first, so a missing one is an error."""
    package = BACKENDS / provider
    stems = PARTS[provider] | {path.stem for path in package.glob("*.py")}
    return {stem: (package / f"{stem}.py").read_text() for stem in sorted(stems)}


def modules(provider: str) -> dict[str, ast.Module]:
    return {stem: ast.parse(text, stem) for stem, text in sources(provider).items()}


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


@pytest.mark.parametrize("provider", sorted(PARTS))
def test_the_backend_is_a_package_of_the_named_parts_and_the_old_modules_are_gone(provider: str) -> None:
    assert {path.stem for path in (BACKENDS / provider).glob("*.py")} == PARTS[provider]
    assert [old for old in OLD_MODULES[provider] if (BACKENDS / old).exists()] == []


@pytest.mark.parametrize("provider", sorted(PARTS))
def test_no_part_is_over_the_line_limit(provider: str) -> None:
    long = {stem: n for stem, text in sources(provider).items() if (n := len(text.splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize("provider", sorted(PARTS))
def test_no_part_imports_the_server_or_the_burst_reconciler(provider: str) -> None:
    reaching = {
        stem: sorted(n for n in imported(tree) if n.startswith(FORBIDDEN)) for stem, tree in modules(provider).items()
    }
    assert {stem: names for stem, names in reaching.items() if names} == {}


@pytest.mark.parametrize("provider", sorted(PARTS))
def test_only_sdk_py_makes_the_sdk_clients_and_credential(provider: str) -> None:
    makers = {
        stem
        for stem, tree in modules(provider).items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and called_name(node) in SDK_MAKERS[provider]
    }
    assert makers == {"sdk"}


@pytest.mark.parametrize(("provider", "package"), [(p, s) for p, sdks in SDK_IMPORTERS.items() for s in sdks])
def test_only_the_named_parts_import_the_sdk(provider: str, package: str) -> None:
    importers = {
        stem
        for stem, tree in modules(provider).items()
        if any(name == package or name.startswith(package + ".") for name in imported(tree))
    }
    assert importers == SDK_IMPORTERS[provider][package]


def test_both_backends_share_one_ttl_cache() -> None:
    users = {
        f"{provider}/{stem}"
        for provider in PARTS
        for stem, tree in modules(provider).items()
        if "controller.backends.cache.TtlCache" in imported(tree)
    }
    assert {"aws/catalog", "aws/pricing", "aws/images", "azure/catalog", "azure/pricing", "azure/images"} <= users


def test_both_facades_share_the_delegations_every_cloud_answers_alike() -> None:
    from controller.backends.aws import AWSBackend
    from controller.backends.azure import AzureBackend
    from controller.backends.composed import ComposedBackend

    assert issubclass(AWSBackend, ComposedBackend) and issubclass(AzureBackend, ComposedBackend)
    shared = {name for name in vars(ComposedBackend) if not name.startswith("_")}
    assert shared & (set(vars(AWSBackend)) | set(vars(AzureBackend))) == set()  # not written again
