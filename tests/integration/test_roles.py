"""API token roles through the real programs: `token create --kind api [--role]`, a user token
refused what changes the cluster (exit 2, the sentence, nothing stored) while it runs and stops
tasks, an admin token doing both, tasks naming their submitter, and an older database's tokens."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

import pytest
from dstack_hybrid.shared.tokens import format_token, hash_secret, parse_token

from tests.integration.conftest import Cluster
from tests.support.cluster import BIN, ControllerProcess, write_task

pytestmark = pytest.mark.docker

FLEET = "type: fleet\nname: shared\n"
DENIED_APPLY = "dstackctl: applying fleets and volumes needs the admin role; this API token has the user role\n"


def tokens_cmd(controller: ControllerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dstack-controller"), "token", *args, "--data-dir", str(controller.data_dir)],
        capture_output=True,
        text=True,
    )


def listed_roles(controller: ControllerProcess) -> dict[str, tuple[str, str]]:
    """token id -> (role, description) as `token list` prints them."""
    out = tokens_cmd(controller, "list")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    role, fleet, description = header.index("ROLE"), header.index("FLEET"), header.index("DESCRIPTION")
    return {r.split()[0]: (r[role:fleet].strip(), r[description:].strip()) for r in rows}


def fleet_names(controller: ControllerProcess) -> list[str]:
    return [f["name"] for f in controller.ctl_json("fleet")]


def test_token_create_gives_api_tokens_a_role_user_by_default(cluster: Cluster) -> None:
    c = cluster.controller
    plain = parse_token(c.token("--kind", "api")).id
    user = parse_token(c.token("--kind", "api", "--role", "user")).id
    admin = parse_token(c.token("--kind", "api", "--role", "admin", "--description", "ops laptop")).id
    first = parse_token(c.admin_token).id
    roles = listed_roles(c)
    assert roles[plain] == ("user", "-")
    assert roles[user][0] == "user"
    assert roles[admin] == ("admin", "ops laptop")
    assert roles[first] == ("admin", "admin")  # the first start's token in <data-dir>/admin-token
    before = tokens_cmd(c, "list").stdout
    refused = tokens_cmd(c, "create", "--kind", "join", "--role", "admin")
    assert refused.returncode == 2
    assert refused.stderr == (
        "dstack-controller: --role is for API tokens (--kind api): a join token only registers a host\n"
    )
    assert refused.stdout == "" and tokens_cmd(c, "list").stdout == before  # nothing created
    bad = tokens_cmd(c, "create", "--kind", "api", "--role", "root")
    assert bad.returncode == 2 and "invalid choice: 'root'" in bad.stderr


def test_a_user_token_cannot_change_fleets_or_hosts_and_an_admin_token_can(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster.controller
    user = c.token("--kind", "api")
    path = write_task(tmp_path / "fleet.yaml", FLEET)
    out = c.ctl("apply", "-f", str(path), token=user)
    assert (out.returncode, out.stderr) == (2, DENIED_APPLY)
    assert "shared" not in fleet_names(c)  # nothing stored
    assert c.ctl("fleet", token=user).returncode == 0  # reading is a user's
    admin = c.token("--kind", "api", "--role", "admin")
    assert c.ctl("apply", "-f", str(path), token=admin).returncode == 0
    assert "shared" in fleet_names(c)
    out = c.ctl("delete", "fleet", "shared", token=user)
    assert (out.returncode, out.stderr) == (
        2,
        "dstackctl: deleting fleets and volumes needs the admin role; this API token has the user role\n",
    )
    assert "shared" in fleet_names(c)
    out = c.ctl("hosts", "rm", cluster.agent.name, token=user)
    assert (out.returncode, out.stderr) == (
        2,
        "dstackctl: removing hosts needs the admin role; this API token has the user role\n",
    )
    assert [h["status"] for h in c.ctl_json("hosts") if h["name"] == cluster.agent.name] == ["online"]
    assert c.ctl("hosts", token=user).returncode == 0
    assert c.ctl("delete", "fleet", "shared", token=admin).returncode == 0


@pytest.mark.parametrize("role", ["user", "admin"])
def test_a_token_of_either_role_submits_and_stops_a_task_that_names_it(
    cluster: Cluster, tmp_path: Path, role: str
) -> None:
    c = cluster.controller
    token = c.token("--kind", "api", "--role", role, "--description", f"{role} ci")
    token_id = parse_token(token).id
    name = f"by-{role}"
    path = write_task(
        tmp_path / "task.yaml", f"type: task\nname: {name}\nimage: dstack-test/busybox:amd64\ncommands: [sleep 300]\n"
    )
    out = c.ctl("submit", "-d", "-f", str(path), token=token)
    assert out.returncode == 0, out.stderr
    c.wait_status(name, "running")
    task = c.task(name)
    assert (task["submitted_by"], task["submitted_by_description"]) == (token_id, f"{role} ci")
    table = c.ctl("ps", "-v", token=token)
    assert table.returncode == 0, table.stderr
    assert "SUBMITTED BY" in table.stdout.splitlines()[0]
    assert f"{token_id} ({role} ci)" in next(line for line in table.stdout.splitlines() if line.startswith(task["id"]))
    out = c.ctl("stop", name, token=token)
    assert out.returncode == 0, out.stderr
    assert c.wait_status(name, "stopped")["submitted_by"] == token_id


OLD_TOKENS = """
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, uses_left INTEGER, fleet TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '', launch_id TEXT NOT NULL DEFAULT ''
);
"""


def test_an_api_token_from_an_older_controller_still_applies_fleets(tmp_path: Path, docker_engine: object) -> None:
    # A data dir whose database an older controller wrote, with a script's API token in it: the
    # upgrade makes it admin (it could do everything before), so the script keeps working.
    data_dir = tmp_path / "controller"
    data_dir.mkdir(mode=0o700)
    secret = "s3cret-of-an-old-script-token-0123456789abcdef"
    with contextlib.closing(sqlite3.connect(data_dir / "controller.db")) as db:
        db.executescript(OLD_TOKENS)
        db.execute(
            "INSERT INTO tokens (id, kind, secret_hash, created_at, description) VALUES (?, 'api', ?, 1.0, 'ci')",
            ("01d5c71b", hash_secret(secret)),
        )
        db.commit()
    controller = ControllerProcess(data_dir)
    controller.start()
    try:
        old = format_token("api", "01d5c71b", secret)
        path = write_task(tmp_path / "fleet.yaml", FLEET)
        out = controller.ctl("apply", "-f", str(path), token=old)
        assert out.returncode == 0, out.stderr
        assert listed_roles(controller)["01d5c71b"] == ("admin", "ci")
        fresh = controller.token("--kind", "api")  # made after the upgrade: a user again
        out = controller.ctl("delete", "fleet", "shared", token=fresh)
        assert out.returncode == 2
    finally:
        controller.stop()
