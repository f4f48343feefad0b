"""The store's status columns hold the words, as before the status enums: a database an older
controller wrote reads back as members, and what this one writes an older one still reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.statuses import InstanceStatus, TaskStatus
from controller.store import open_store
from controller.store.records import InstanceRecord, TaskRecord

TASK_WORDS = ["pending", "provisioning", "running", "done", "failed", "stopped", "refused"]
INSTANCE_WORDS = ["launching", "running", "terminating", "terminated", "failed"]


def written_by_an_older_controller(path: Path) -> None:
    """Rows as the controller before the enums wrote them: its INSERTs with the words as TEXT,
    into the tables the store creates (naming only the columns that release had)."""
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    for i, word in enumerate(TASK_WORDS):
        db.execute(
            "INSERT INTO tasks (id, name, configuration_json, image, submitted_at, status, arch, host_id, reason,"
            " exit_code, started_at, finished_at, stop_requested, abort_requested, refused_hosts, refusal)"
            " VALUES (?, ?, '{}', 'busybox:1.36', ?, ?, '', '', '', NULL, NULL, NULL, 0, 0, '[]', '')",
            (f"k{i}", f"t{i}", 1000.0 + i, word),
        )
    for i, word in enumerate(INSTANCE_WORDS):
        db.execute(
            "INSERT INTO instances (id, backend, region, zone, instance_type, fleet, created_at, spot, price, task_id,"
            " cloud_id, cloud_name, token_id, status, host_id, registered_at, idle_since, reason)"
            " VALUES (?, 'aws', 'eu-west-1', 'eu-west-1a', 'm7g.large', 'f', ?, 0, NULL, '', ?, '', '', ?, '',"
            " NULL, NULL, '')",
            (f"l{i}", 10.0 + i, f"i-{i}", word),
        )
    db.commit()
    db.close()


def test_an_older_controllers_database_reads_back_as_members(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    written_by_an_older_controller(path)
    store = open_store(f"sqlite:///{path}")
    try:
        tasks = store.list_tasks(include_finished=True)
        assert [t.status for t in tasks] == [TaskStatus(w) for w in TASK_WORDS]
        assert all(type(t.status) is TaskStatus for t in tasks)
        # The unfinished ones, selected in SQL by the words of the terminal members.
        assert [t.status for t in store.list_tasks(include_finished=False)] == [
            TaskStatus.PENDING, TaskStatus.PROVISIONING, TaskStatus.RUNNING,
        ]  # fmt: skip
        found = store.find_task("t3")
        assert found is not None and found.status is TaskStatus.DONE and found.terminal
        instances = store.list_instances(include_gone=True)
        assert [i.status for i in instances] == [InstanceStatus(w) for w in INSTANCE_WORDS]
        assert [i.id for i in store.list_instances()] == ["l0", "l1", "l2"]  # terminated and failed are gone
    finally:
        store.close()


def test_what_this_controller_writes_is_the_word_as_text(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = open_store(f"sqlite:///{path}")
    try:
        task = TaskRecord(id="k1", name="t1", configuration_json="{}", image="busybox:1.36", submitted_at=1.0)
        store.add_task(task)
        task.status = TaskStatus.RUNNING
        store.update_task(task)
        store.put_instance(
            InstanceRecord(
                id="l1", backend="aws", region="r", zone="z", instance_type="t", fleet="f", created_at=1.0,
                status=InstanceStatus.TERMINATING,
            )
        )  # fmt: skip
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT status, typeof(status) FROM tasks").fetchall() == [("running", "text")]
        assert db.execute("SELECT status, typeof(status) FROM instances").fetchall() == [("terminating", "text")]
    finally:
        db.close()
