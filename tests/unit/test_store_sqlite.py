"""The SQLite store on a real file: tokens, hosts, tasks, logs, and what survives a reopen."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import Store, StoreURLError, open_store
from controller.store.records import HostRecord, StoredLogLine, TaskRecord, TokenRecord


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = open_store("sqlite:///" + str(db_path))
    yield s
    s.close()


def token(tid: str = "t1", **kw: object) -> TokenRecord:
    values: dict[str, object] = {"id": tid, "kind": "join", "secret_hash": "h-" + tid, "created_at": 100.0}
    values.update(kw)
    return TokenRecord(**values)  # type: ignore[arg-type]


def host(hid: str = "h1", name: str = "node-1", **kw: object) -> HostRecord:
    values: dict[str, object] = {
        "id": hid,
        "name": name,
        "credential_hash": "cred-" + hid,
        "facts_json": '{"arch": "amd64"}',
        "arch": "amd64",
        "registered_at": 10.0,
        "last_seen": 11.0,
    }
    values.update(kw)
    return HostRecord(**values)  # type: ignore[arg-type]


def task(tid: str = "k1", name: str = "train", submitted_at: float = 1000.0, **kw: object) -> TaskRecord:
    values: dict[str, object] = {
        "id": tid,
        "name": name,
        "configuration_json": '{"type": "task"}',
        "image": "busybox:1.36",
        "submitted_at": submitted_at,
    }
    values.update(kw)
    return TaskRecord(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- opening


def test_open_store_creates_parent_dirs_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "c.db"
    s = open_store("sqlite:///" + str(path))
    try:
        assert path.exists()
        with contextlib.closing(sqlite3.connect(str(path))) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/db", "PostgreSQL is not supported yet; use sqlite:///PATH"),
        ("postgres://u@h/db", "PostgreSQL is not supported yet; use sqlite:///PATH"),
        ("mysql://h/db", "unsupported database URL 'mysql://h/db': expected sqlite:///PATH"),
        ("sqlite://x.db", "unsupported database URL 'sqlite://x.db': expected sqlite:///PATH"),
    ],
)
def test_open_store_rejects_other_urls(url: str, message: str) -> None:
    with pytest.raises(StoreURLError) as exc:
        open_store(url)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)


# ---------------------------------------------------------------- tokens


def test_token_add_get_list_roundtrip(store: Store) -> None:
    full = token("b", kind="api", expires_at=500.5, uses_left=3, fleet="gpu", description="ci", created_at=200.0)
    store.add_token(full)
    store.add_token(token("a", created_at=100.0))
    assert store.get_token("b") == full
    assert store.get_token("a") == token("a", created_at=100.0)
    assert store.get_token("missing") is None
    assert [t.id for t in store.list_tokens()] == ["a", "b"]  # by creation time


def test_token_ids_are_unique(store: Store) -> None:
    store.add_token(token("dup"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_token(token("dup"))


def test_revoke_token(store: Store) -> None:
    store.add_token(token("t"))
    assert store.revoke_token("t") is True
    assert store.get_token("t").revoked is True  # type: ignore[union-attr]
    assert store.revoke_token("nope") is False


def test_use_token_spends_one_use_at_a_time(store: Store) -> None:
    store.add_token(token("t", uses_left=2, fleet="edge"))
    got, why = store.use_token("t", "h-t", "join", now=150.0)
    assert why == ""
    assert got is not None and got.uses_left == 1 and got.fleet == "edge"
    assert store.get_token("t").uses_left == 1  # type: ignore[union-attr]
    got, why = store.use_token("t", "h-t", "join", now=150.0)
    assert (got.uses_left, why) == (0, "")  # type: ignore[union-attr]
    assert store.use_token("t", "h-t", "join", now=150.0) == (None, "token t is used up")
    assert store.get_token("t").uses_left == 0  # type: ignore[union-attr]


def test_use_token_unlimited_uses_stay_unlimited(store: Store) -> None:
    store.add_token(token("u", kind="api"))
    for _ in range(5):
        got, why = store.use_token("u", "h-u", "api", now=150.0)
        assert why == "" and got is not None and got.uses_left is None
    assert store.get_token("u").uses_left is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("record", "secret_hash", "kind", "now", "why"),
    [
        (token("t", uses_left=1), "h-t", "join", 150.0, ""),
        (token("t", uses_left=1), "wrong", "join", 150.0, "token t has a wrong secret or is not a join token"),
        (token("t", uses_left=1), "h-t", "api", 150.0, "token t has a wrong secret or is not an api token"),
        (token("t", revoked=True), "h-t", "join", 150.0, "token t is revoked"),
        (token("t", expires_at=150.0), "h-t", "join", 150.0, "token t expired"),
        (token("t", expires_at=150.0), "h-t", "join", 149.9, ""),
        (token("t", uses_left=0), "h-t", "join", 150.0, "token t is used up"),
    ],
)
def test_use_token_reasons(
    store: Store, record: TokenRecord, secret_hash: str, kind: str, now: float, why: str
) -> None:
    store.add_token(record)
    got, reason = store.use_token("t", secret_hash, kind, now)
    assert reason == why
    assert (got is None) == bool(why)


def test_use_token_unknown_id(store: Store) -> None:
    assert store.use_token("ghost", "x", "join", 1.0) == (None, "token ghost does not exist")


def test_refused_attempts_do_not_spend_uses(store: Store) -> None:
    store.add_token(token("t", uses_left=1))
    assert store.use_token("t", "bad", "join", 1.0)[0] is None
    assert store.use_token("t", "h-t", "api", 1.0)[0] is None
    assert store.get_token("t").uses_left == 1  # type: ignore[union-attr]
    assert store.use_token("t", "h-t", "join", 1.0)[1] == ""


def test_use_token_is_atomic_across_threads_and_connections(store: Store, db_path: Path) -> None:
    store.add_token(token("race", uses_left=5))
    other = open_store("sqlite:///" + str(db_path))  # a second connection, like `token create` beside the server
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        s = store if i % 2 else other
        barrier.wait()
        _, why = s.use_token("race", "h-race", "join", 1.0)
        with lock:
            results.append(why)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert results.count("") == 5
    assert results.count("token race is used up") == 11
    assert store.get_token("race").uses_left == 0  # type: ignore[union-attr]


# ---------------------------------------------------------------- hosts


def test_host_add_get_list(store: Store) -> None:
    b = host("h2", "b-node", region="eu", zone="eu-1a", fleet="f")
    a = host("h1", "a-node")
    store.add_host(b)
    store.add_host(a)
    assert store.get_host("h2") == b
    assert store.get_host("nope") is None
    assert [h.name for h in store.list_hosts()] == ["a-node", "b-node"]


def test_host_names_and_ids_are_unique(store: Store) -> None:
    store.add_host(host("h1", "same"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_host(host("h2", "same"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_host(host("h1", "other"))
    store.add_host(host("h3", "third"))
    renamed = host("h3", "same")
    with pytest.raises(sqlite3.IntegrityError):
        store.update_host(renamed)
    assert store.get_host("h3").name == "third"  # type: ignore[union-attr]
    assert [h.id for h in store.list_hosts()] == ["h1", "h3"]


def test_update_host_roundtrips_every_field(store: Store) -> None:
    store.add_host(host())
    changed = HostRecord(
        id="h1",
        name="renamed",
        credential_hash="new-cred",
        facts_json='{"arch": "arm64"}',
        arch="arm64",
        registered_at=20.0,
        last_seen=21.5,
        region="us-east-1",
        zone="us-east-1b",
        fleet="burst",
    )
    store.update_host(changed)
    assert store.get_host("h1") == changed


def test_touch_host_changes_only_last_seen(store: Store) -> None:
    original = host(region="r")
    store.add_host(original)
    store.touch_host("h1", 99.25)
    assert store.get_host("h1") == dataclasses.replace(original, last_seen=99.25)
    store.touch_host("ghost", 1.0)  # no such host: nothing happens
    assert len(store.list_hosts()) == 1


def test_delete_host(store: Store) -> None:
    store.add_host(host())
    assert store.delete_host("h1") is True
    assert store.get_host("h1") is None
    assert store.delete_host("h1") is False
    store.add_host(host("h9", "node-1"))  # the name is free again
    assert store.get_host("h9") is not None


# ---------------------------------------------------------------- tasks


def test_task_add_get_defaults(store: Store) -> None:
    t = task()
    store.add_task(t)
    got = store.get_task("k1")
    assert got == t
    assert got is not None and got.status == "pending" and got.refused_hosts == [] and got.exit_code is None
    assert store.get_task("nope") is None


def test_find_task_by_id_or_newest_by_name(store: Store) -> None:
    store.add_task(task("k1", "train", 100.0))
    store.add_task(task("k3", "train", 300.0))
    store.add_task(task("k2", "train", 200.0))
    store.add_task(task("k4", "k1", 400.0))  # a task named like another task's id
    assert store.find_task("train").id == "k3"  # type: ignore[union-attr]
    assert store.find_task("k2").id == "k2"  # type: ignore[union-attr]
    assert store.find_task("k1").id == "k1"  # type: ignore[union-attr]  # the id wins over a newer name
    assert store.find_task("nothing") is None


def test_list_tasks_with_and_without_finished(store: Store) -> None:
    statuses = ["running", "done", "pending", "failed", "provisioning", "stopped", "refused"]
    for i, status in enumerate(statuses):
        store.add_task(task(f"k{i}", f"t{i}", submitted_at=1000.0 - i, status=status))
    active = store.list_tasks(include_finished=False)
    assert [t.status for t in active] == ["provisioning", "pending", "running"]  # by submission time
    everything = store.list_tasks(include_finished=True)
    assert [t.id for t in everything] == [f"k{i}" for i in reversed(range(len(statuses)))]
    assert all(not t.terminal for t in active)


def test_update_task_roundtrips_every_field(store: Store) -> None:
    store.add_task(task())
    changed = TaskRecord(
        id="k1",
        name="train-2",
        configuration_json='{"type": "task", "commands": ["echo hi"]}',
        image="127.0.0.1:5000/app@sha256:abc",
        submitted_at=1001.5,
        status="failed",
        arch="arm64",
        host_id="h7",
        reason="exit code 3",
        exit_code=3,
        started_at=1002.25,
        finished_at=1010.75,
        stop_requested=True,
        abort_requested=True,
        refused_hosts=["h1", "h2"],
        refusal="image busybox is linux/amd64 only; host is arm64",
        provisioning_reason="launched m7g.large i-0abc in aws eu-west-1, waiting for its agent",
    )
    store.update_task(changed)
    got = store.get_task("k1")
    assert got == changed
    assert got is not None and got.terminal
    assert isinstance(got.stop_requested, bool) and isinstance(got.refused_hosts, list)

    # And back: booleans off, optional numbers cleared, list emptied.
    reverted = task()
    store.update_task(reverted)
    assert store.get_task("k1") == reverted


def test_update_task_exit_code_zero_is_not_none(store: Store) -> None:
    store.add_task(task())
    store.update_task(task(status="done", exit_code=0, started_at=0.0, finished_at=0.0))
    got = store.get_task("k1")
    assert got is not None and got.exit_code == 0 and got.started_at == 0.0


# ---------------------------------------------------------------- logs


def line(stream: int, seq: int, ts: int, data: bytes | None = None) -> StoredLogLine:
    return StoredLogLine(stream, seq, ts, data if data is not None else f"{stream}:{seq}\n".encode())


def test_append_logs_is_idempotent_and_returns_only_new_lines(store: Store) -> None:
    first = [line(1, 0, 10), line(1, 1, 20), line(2, 0, 15)]
    assert store.append_logs("k1", first) == first
    again = [line(1, 1, 20), line(1, 2, 30), line(2, 0, 15), line(2, 1, 35)]
    assert store.append_logs("k1", again) == [line(1, 2, 30), line(2, 1, 35)]
    assert store.append_logs("k1", again) == []
    # (stream, seq) is the key: a resend with other data does not overwrite.
    assert store.append_logs("k1", [line(1, 0, 999, b"changed\n")]) == []
    assert store.read_logs("k1")[0] == line(1, 0, 10)
    assert store.append_logs("k1", []) == []


def test_log_counts_per_stream(store: Store) -> None:
    assert store.log_counts("k1") == {}
    store.append_logs("k1", [line(1, i, i) for i in range(4)] + [line(2, 0, 1)])
    store.append_logs("other", [line(1, 0, 1)])
    assert store.log_counts("k1") == {1: 4, 2: 1}
    assert store.log_counts("other") == {1: 1}


def test_read_logs_ordered_by_engine_timestamp(store: Store) -> None:
    lines = [
        line(1, 0, 1_700_000_000_000_000_300),
        line(2, 0, 1_700_000_000_000_000_100),
        line(1, 1, 1_700_000_000_000_000_200),
        line(2, 1, 1_700_000_000_000_000_400, b"\x00\xffbinary\r\n"),
    ]
    store.append_logs("k1", lines)
    got = store.read_logs("k1")
    assert [x.ts_ns for x in got] == sorted(x.ts_ns for x in lines)
    assert [(x.stream, x.seq) for x in got] == [(2, 0), (1, 1), (1, 0), (2, 1)]
    assert got[-1].data == b"\x00\xffbinary\r\n"
    assert all(isinstance(x.data, bytes) for x in got)
    assert store.read_logs("unknown") == []


def test_logs_of_tasks_are_separate(store: Store) -> None:
    store.append_logs("a", [line(1, 0, 1)])
    assert store.append_logs("b", [line(1, 0, 1)]) == [line(1, 0, 1)]
    assert len(store.read_logs("a")) == len(store.read_logs("b")) == 1


# ---------------------------------------------------------------- persistence


def test_everything_survives_close_and_reopen(db_path: Path) -> None:
    url = "sqlite:///" + str(db_path)
    s = open_store(url)
    s.add_token(token("t", uses_left=2))
    s.use_token("t", "h-t", "join", 1.0)
    s.add_host(host())
    t = task(status="running", refused_hosts=["hx"], refusal="no")
    s.add_task(t)
    s.append_logs("k1", [line(1, 0, 5), line(2, 0, 6)])
    s.close()

    reopened = open_store(url)
    try:
        assert reopened.get_token("t") == token("t", uses_left=1)
        assert reopened.get_host("h1") == host()
        assert reopened.get_task("k1") == t
        assert reopened.log_counts("k1") == {1: 1, 2: 1}
        assert reopened.read_logs("k1") == [line(1, 0, 5), line(2, 0, 6)]
        # Reopening re-runs the schema; it must not duplicate or drop anything.
        with contextlib.closing(sqlite3.connect(str(db_path))) as raw:
            assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall() == [("1",)]
    finally:
        reopened.close()


def test_a_database_from_an_older_controller_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE hosts (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, credential_hash TEXT NOT NULL,"
        " facts_json TEXT NOT NULL, arch TEXT NOT NULL, registered_at REAL NOT NULL, last_seen REAL NOT NULL,"
        " region TEXT NOT NULL DEFAULT '', zone TEXT NOT NULL DEFAULT '', fleet TEXT NOT NULL DEFAULT '');"
        "INSERT INTO hosts VALUES ('h1', 'old-host', 'x', '{}', 'amd64', 1.0, 2.0, '', '', '');"
    )
    db.commit()
    db.close()
    store = open_store(f"sqlite:///{path}")
    host = store.get_host("h1")
    assert host is not None and (host.name, host.cert_serial, host.prev_cert_serial) == ("old-host", "", "")
    host.cert_serial = "ab"
    store.update_host(host)
    assert store.get_host("h1").cert_serial == "ab"  # type: ignore[union-attr]


def test_configs_insert_update_in_place_list_delete_and_survive_reopen(tmp_path: Path) -> None:
    from controller.store.records import ConfigRecord

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    store.put_config(ConfigRecord("fleet", "gpu", '{"a": 1}', created_at=1.0, updated_at=1.0))
    store.put_config(ConfigRecord("volume", "gpu", '{"v": 1}', created_at=2.0, updated_at=2.0))
    store.put_config(ConfigRecord("fleet", "gpu", '{"a": 2}', created_at=9.0, updated_at=5.0, error="x"))
    fleet = store.get_config("fleet", "gpu")
    assert fleet == ConfigRecord("fleet", "gpu", '{"a": 2}', created_at=1.0, updated_at=5.0, error="x")
    assert [c.name for c in store.list_configs("volume")] == ["gpu"]
    store.close()
    store = open_store(url)
    assert store.get_config("fleet", "gpu") == fleet
    assert store.delete_config("fleet", "gpu") and not store.delete_config("fleet", "gpu")
    assert store.get_config("fleet", "gpu") is None and store.get_config("volume", "gpu") is not None


# Tables as a controller before provisioning_reason and launch_id made them (main at 1d5da33), with
# rows as it wrote them: bursting's part spliced onto the reason, a launch named in the description.
OLD_TASKS_AND_TOKENS = """
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, uses_left INTEGER, fleet TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, configuration_json TEXT NOT NULL, image TEXT NOT NULL,
    submitted_at REAL NOT NULL, status TEXT NOT NULL, arch TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', exit_code INTEGER,
    started_at REAL, finished_at REAL, stop_requested INTEGER NOT NULL DEFAULT 0,
    abort_requested INTEGER NOT NULL DEFAULT 0, refused_hosts TEXT NOT NULL DEFAULT '[]',
    refusal TEXT NOT NULL DEFAULT ''
);
INSERT INTO tokens (id, kind, secret_hash, created_at, uses_left, fleet, description)
    VALUES ('j1', 'join', 'h', 1.0, 1, 'cloud', 'launch 0a1b2c3d4e5f'),
           ('j2', 'join', 'h', 1.0, 1, '', 'rack 4'),
           ('a1', 'api', 'h', 1.0, NULL, '', 'admin');
INSERT INTO tasks (id, name, configuration_json, image, submitted_at, status, reason) VALUES
    ('k1', 'both', '{}', 'busybox', 1.0, 'pending',
     'no host fits (arch: needs arm64); cloud: launched m7g.large i-0abc in aws eu-west-1, waiting for its agent'),
    ('k2', 'cloud-only', '{}', 'busybox', 2.0, 'pending', 'cloud: no offer fits (3 of 3: arch)'),
    ('k3', 'placement-only', '{}', 'busybox', 3.0, 'pending', 'no host fits (memory)'),
    ('k4', 'done', '{}', 'busybox', 4.0, 'failed', 'exited with code 3');
"""


def test_an_older_database_gets_reasons_split_and_launch_tokens_named_by_field(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_TASKS_AND_TOKENS)
    store = open_store(f"sqlite:///{path}")
    try:
        split = {t.name: (t.reason, t.provisioning_reason) for t in store.list_tasks(include_finished=True)}
        assert split == {
            "both": ("no host fits (arch: needs arm64)",
                     "launched m7g.large i-0abc in aws eu-west-1, waiting for its agent"),
            "cloud-only": ("", "no offer fits (3 of 3: arch)"),
            "placement-only": ("no host fits (memory)", ""),
            "done": ("exited with code 3", ""),
        }  # fmt: skip
        launches = {t.id: (t.launch_id, t.description) for t in store.list_tokens()}
        assert launches == {"j1": ("0a1b2c3d4e5f", "launch 0a1b2c3d4e5f"), "j2": ("", "rack 4"), "a1": ("", "admin")}
    finally:
        store.close()
    # The migration ran once: a reason written later with the old words in it is left alone.
    store = open_store(f"sqlite:///{path}")
    try:
        k3 = store.get_task("k3")
        assert k3 is not None
        k3.reason = "no host fits; cloud: is a word here"
        store.update_task(k3)
        store.close()
        store = open_store(f"sqlite:///{path}")
        assert store.get_task("k3").reason == "no host fits; cloud: is a word here"  # type: ignore[union-attr]
    finally:
        store.close()


def test_token_launch_id_roundtrips(store: Store) -> None:
    store.add_token(token("j9", launch_id="feedc0ffee12", description="launch feedc0ffee12"))
    got = store.get_token("j9")
    assert got is not None and got.launch_id == "feedc0ffee12"


def test_attachments_are_kept_replaced_and_dropped_by_volume_or_host(db_path: Path) -> None:
    from controller.store.records import AttachmentRecord

    url = "sqlite:///" + str(db_path)
    store = open_store(url)
    store.put_attachment(AttachmentRecord("disk-we", "h1", "/subscriptions/s/disks/disk-we", "", 0, 5.0))
    store.put_attachment(AttachmentRecord("disk-we", "h1", "/subscriptions/s/disks/disk-we", "", 2, 6.0))
    store.put_attachment(AttachmentRecord("vol-eu", "h1", "vol-0abc", "vol0abc", None, 7.0))
    store.put_attachment(AttachmentRecord("vol-eu", "h2", "vol-0abc", "vol0abc", None, 8.0))
    store.close()
    store = open_store(url)
    try:
        assert store.get_attachment("disk-we", "h1") == AttachmentRecord(
            "disk-we", "h1", "/subscriptions/s/disks/disk-we", "", 2, 6.0
        )
        assert store.get_attachment("vol-eu", "h2").lun is None  # type: ignore[union-attr]
        assert store.get_attachment("disk-we", "h2") is None
        assert store.delete_attachments(host_id="h1") == 2
        assert store.get_attachment("vol-eu", "h2") is not None
        assert store.delete_attachments(volume="vol-eu") == 1
        assert store.get_attachment("vol-eu", "h2") is None
        with pytest.raises(ValueError):
            store.delete_attachments()
    finally:
        store.close()


def test_count_tasks_counts_one_submitters_tasks_in_one_status(store: Store) -> None:
    from controller.statuses import TaskStatus

    store.add_task(task("a1", "a1", submitted_by="alice"))
    store.add_task(task("a2", "a2", submitted_by="alice"))
    store.add_task(task("a3", "a3", submitted_by="alice", status=TaskStatus.RUNNING))
    store.add_task(task("b1", "b1", submitted_by="bob"))
    assert store.count_tasks("alice", TaskStatus.PENDING) == 2
    assert store.count_tasks("alice", TaskStatus.RUNNING) == 1
    assert store.count_tasks("bob", TaskStatus.PENDING) == 1
    assert store.count_tasks("carol", TaskStatus.PENDING) == 0
