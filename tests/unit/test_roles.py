"""API token roles: the RPC -> role table, the store's role and submitter columns (an older
database's API tokens become admin), and what token creation gives each kind."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.cli import format as fmt
from controller.roles import Role
from controller.server.access import CLIENT_RPCS, CLIENT_SERVICE, denial
from controller.store import Store, open_store
from controller.store.records import TaskRecord
from controller.tokens import create_token

SERVICE = pb.DESCRIPTOR.services_by_name["ClientService"]
ADMIN_ONLY = {"Apply", "Delete", "RemoveHost", "CheckInstanceTypes"}


def test_every_client_rpc_has_exactly_one_row() -> None:
    # An RPC added to the .proto without a row here is refused to every token: this fails first.
    assert SERVICE.full_name == CLIENT_SERVICE
    assert sorted(m.name for m in SERVICE.methods) == sorted(CLIENT_RPCS)


@pytest.mark.parametrize("rpc", sorted(m.name for m in SERVICE.methods))
def test_admin_may_call_everything_and_user_all_but_the_shared_state(rpc: str) -> None:
    assert denial(rpc, Role.ADMIN) == ""
    if rpc in ADMIN_ONLY:
        refused = denial(rpc, Role.USER)
        assert refused.endswith("needs the admin role; this API token has the user role")
        assert refused.startswith(CLIENT_RPCS[rpc].action)
    else:
        assert denial(rpc, Role.USER) == ""


def test_the_denials_read_as_sentences() -> None:
    assert denial("Apply", Role.USER) == (
        "applying fleets and volumes needs the admin role; this API token has the user role"
    )
    assert denial("RemoveHost", Role.USER) == "removing hosts needs the admin role; this API token has the user role"
    assert denial("Unknown", Role.ADMIN) == "Unknown is not a call this controller grants to any token"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store("sqlite:///" + str(tmp_path / "roles.db"))
    yield s
    s.close()


def test_api_tokens_default_to_user_and_keep_the_role_asked_for(store: Store) -> None:
    plain, _ = create_token(store, "api")
    admin, _ = create_token(store, "api", role=Role.ADMIN, description="ops")
    user, _ = create_token(store, "api", role=Role.USER)
    join, _ = create_token(store, "join", ca_fingerprint="ab" * 32)
    roles = {t.id: t.role for t in store.list_tokens()}
    assert roles == {plain.id: Role.USER, admin.id: Role.ADMIN, user.id: Role.USER, join.id: None}
    assert store.get_token(admin.id).description == "ops"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="a join token has no role"):
        create_token(store, "join", ca_fingerprint="ab" * 32, role=Role.ADMIN)


def test_tasks_keep_their_submitter_through_updates(store: Store) -> None:
    task = TaskRecord("k1", "t", "{}", "busybox", 1.0, submitted_by="3f9a0c1e", submitted_by_description="ci")
    store.add_task(task)
    task.reason = "no host fits"
    store.update_task(task)
    got = store.get_task("k1")
    assert got is not None and (got.submitted_by, got.submitted_by_description, got.reason) == (
        "3f9a0c1e",
        "ci",
        "no host fits",
    )


# The tokens and tasks tables as the controller before roles made them (main at e83602b).
OLD_TOKENS_AND_TASKS = """
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, uses_left INTEGER, fleet TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '', launch_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, configuration_json TEXT NOT NULL, image TEXT NOT NULL,
    submitted_at REAL NOT NULL, status TEXT NOT NULL, arch TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', exit_code INTEGER,
    started_at REAL, finished_at REAL, stop_requested INTEGER NOT NULL DEFAULT 0,
    abort_requested INTEGER NOT NULL DEFAULT 0, refused_hosts TEXT NOT NULL DEFAULT '[]',
    refusal TEXT NOT NULL DEFAULT '', provisioning_reason TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 1, retry_since REAL, stdout_base INTEGER NOT NULL DEFAULT 0,
    stderr_base INTEGER NOT NULL DEFAULT 0, lost_hosts TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO tokens (id, kind, secret_hash, created_at, uses_left, description)
    VALUES ('a1', 'api', 'h', 1.0, NULL, 'admin'), ('a2', 'api', 'h', 2.0, NULL, ''),
           ('j1', 'join', 'h', 3.0, 1, 'rack 4');
INSERT INTO tasks (id, name, configuration_json, image, submitted_at, status)
    VALUES ('k1', 'old', '{}', 'busybox', 1.0, 'done');
"""


def test_an_older_database_keeps_its_api_tokens_able_to_do_everything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_TOKENS_AND_TASKS)
    store = open_store(f"sqlite:///{path}")
    try:
        assert {t.id: t.role for t in store.list_tokens()} == {"a1": Role.ADMIN, "a2": Role.ADMIN, "j1": None}
        old = store.get_task("k1")
        assert old is not None and (old.submitted_by, old.submitted_by_description) == ("", "")
        create_token(store, "api")  # made after the upgrade: the default again
    finally:
        store.close()
    store = open_store(f"sqlite:///{path}")  # the backfill ran once: the new user token stays one
    try:
        assert sorted(str(t.role) for t in store.list_tokens() if t.kind == "api") == ["admin", "admin", "user"]
    finally:
        store.close()


def test_ps_names_the_submitter_by_token_id_and_description() -> None:
    assert fmt.submitter("3f9a0c1e", "ci") == "3f9a0c1e (ci)"
    assert fmt.submitter("3f9a0c1e", "") == "3f9a0c1e"
    assert fmt.submitter("", "") == "-"
