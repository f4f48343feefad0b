"""`dstack-controller token` and `cloud-init` find the data dir of a controller that exists, and
never make one: a token printed for a fresh CA in ~/.dstack-controller is a token for a
controller that does not run.

The service's places are pointed into tmp_path with the documented seams
(DSTACK_CONTROLLER_DEFAULTS_FILE for /etc/default/dstack-controller,
DSTACK_CONTROLLER_SERVICE_DATA_DIR for /var/lib/dstack-controller) and HOME; nothing here reads
or writes the real /etc or /var/lib."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dstack_hybrid.shared.tokens import parse_token

from controller.store import open_store
from controller.tls import load_ca
from tests.support.cluster import BIN, ControllerProcess, served_data_dir


@pytest.fixture
def places(tmp_path: Path) -> Iterator[dict[str, Path]]:
    p = {
        "home": tmp_path / "home",
        "service": tmp_path / "var-lib" / "dstack-controller",
        "defaults": tmp_path / "etc-default" / "dstack-controller",
    }
    p["home"].mkdir()
    p["user"] = p["home"] / ".dstack-controller"
    yield p


def run(places: dict[str, Path], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DSTACK_") and k != "INVOCATION_ID"}
    environ.update(
        HOME=str(places["home"]),
        DSTACK_CONTROLLER_SERVICE_DATA_DIR=str(places["service"]),
        DSTACK_CONTROLLER_DEFAULTS_FILE=str(places["defaults"]),
        **env,
    )
    return subprocess.run([str(BIN / "dstack-controller"), *args], capture_output=True, text=True, env=environ,
                          timeout=60)  # fmt: skip


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


COMMANDS = [
    ["token", "create"],
    ["token", "create", "--kind", "api"],
    ["token", "list"],
    ["token", "revoke", "abc123"],
    ["cloud-init", "--fleet", "gpu", "--controller", "10.0.0.5:7443", "--package-url", "https://example.com/a.deb"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_without_any_controller_every_command_refuses_and_makes_nothing(
    places: dict[str, Path], tmp_path: Path, command: list[str]
) -> None:
    before = tree(tmp_path)
    out = run(places, *command)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip() == (
        f"dstack-controller: no controller data dir found (looked at {places['service']} and {places['user']}): "
        "start `dstack-controller serve` first, or pass --data-dir"
    )
    assert tree(tmp_path) == before  # no ~/.dstack-controller, no CA, no database


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_named_data_dir_no_controller_used_is_refused(places: dict[str, Path], tmp_path: Path, how: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    served_data_dir(places["user"])  # a controller elsewhere does not make the named one right
    if how == "flag":
        out = run(places, "token", "create", "--data-dir", str(empty))
    else:
        out = run(places, "token", "create", DSTACK_CONTROLLER_DATA_DIR=str(empty))
    assert out.returncode == 2 and out.stdout == ""
    named = "--data-dir" if how == "flag" else "DSTACK_CONTROLLER_DATA_DIR"
    assert out.stderr.strip() == (
        f"dstack-controller: no controller has been started with the data dir {empty} ({named}): "
        f"start `dstack-controller serve --data-dir {empty}` first, or name the data dir of the running one"
    )
    assert list(empty.iterdir()) == []


def _join_token_belongs_to(text: str, data_dir: Path, database: Path | None = None) -> None:
    """The token pins that data dir's CA and is stored in its database."""
    parsed = parse_token(text.strip())
    assert parsed.ca_fingerprint == load_ca(data_dir)[0].fingerprint
    store = open_store(f"sqlite:///{database or data_dir / 'controller.db'}", create=False)
    try:
        assert store.get_token(parsed.id) is not None
    finally:
        store.close()


def test_the_per_user_data_dir_of_a_plain_serve_is_found(places: dict[str, Path]) -> None:
    served_data_dir(places["user"])
    out = run(places, "token", "create")
    assert out.returncode == 0, out.stderr
    _join_token_belongs_to(out.stdout, places["user"])
    assert not places["service"].exists()


def test_the_services_data_dir_is_found_with_what_etc_default_says(places: dict[str, Path], tmp_path: Path) -> None:
    """The unit runs `serve --data-dir /var/lib/dstack-controller $DSTACK_CONTROLLER_OPTS`: a
    --data-dir there wins, and so does the database it names."""
    moved = served_data_dir(tmp_path / "srv" / "controller")
    database = tmp_path / "srv" / "other.db"
    open_store(f"sqlite:///{database}").close()
    places["defaults"].parent.mkdir(parents=True)
    places["defaults"].write_text(
        "# written by the operator\n"
        "DSTACK_CONTROLLER_LISTEN=0.0.0.0:7443\n"
        f'DSTACK_CONTROLLER_OPTS="--registry-mirror http://127.0.0.1:5000 --data-dir {moved}"\n'
        f"DSTACK_DATABASE_URL=sqlite:///{database}\n"
    )
    out = run(places, "token", "create", "--fleet", "gpu")
    assert out.returncode == 0, out.stderr
    _join_token_belongs_to(out.stdout, moved, database)
    listed = run(places, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert parse_token(out.stdout.strip()).id in listed.stdout and "gpu" in listed.stdout


def test_the_default_service_data_dir_without_etc_default(places: dict[str, Path]) -> None:
    served_data_dir(places["service"])
    out = run(places, "cloud-init", "--fleet", "gpu", "--controller", "10.0.0.5:7443")
    assert out.returncode == 0, out.stderr
    assert "#cloud-config" in out.stdout
    assert not places["user"].exists()


def test_both_present_and_neither_running_is_ambiguous(places: dict[str, Path]) -> None:
    served_data_dir(places["service"])
    served_data_dir(places["user"])
    out = run(places, "token", "create")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (
        f"dstack-controller: both {places['service']} and {places['user']} hold a controller: "
        "pass --data-dir to choose one"
    )


def test_both_present_the_running_one_wins_and_says_so(places: dict[str, Path]) -> None:
    served_data_dir(places["service"])
    controller = ControllerProcess(places["user"])
    controller.start()
    try:
        out = run(places, "token", "create")
        assert out.returncode == 0, out.stderr
        _join_token_belongs_to(out.stdout, places["user"])
        assert (
            f"using {places['user']}, the data dir of the running controller ({places['service']} holds another)"
            in out.stderr
        )
    finally:
        controller.stop()
