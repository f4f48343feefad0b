"""The journal writes a task and its history together, the history is bounded and survives a
reopened store, and nothing else in the controller writes tasks (or a transition could skip its
history line)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from controller.scheduler.journal import TaskJournal
from controller.statuses import TaskStatus
from controller.store import open_store
from controller.store.records import TaskRecord
from controller.store.sqlite_schema import TASK_EVENTS_KEPT

ROOT = Path(__file__).resolve().parents[2]


def test_history_is_written_with_the_task_and_survives_a_reopened_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    journal = TaskJournal(store, lambda h: {"h1": "node-1"}.get(h, h), lambda: 100.0)
    task = TaskRecord("t1", "train", "{}", "busybox:1.36", submitted_at=50.0)
    journal.add(task)
    journal.update(dataclasses.replace(task, status=TaskStatus.PROVISIONING, host_id="h1"))
    journal.note(["t1"], "pulling", "pulling busybox:1.36", at=101.0)
    store.close()

    reopened = open_store(url)
    got = [(e.at, e.kind, e.message) for e in reopened.task_events("t1")]
    assert got == [
        (50.0, "submitted", "submitted (busybox:1.36)"),
        (100.0, "placed", "placed on node-1"),
        (101.0, "pulling", "pulling busybox:1.36"),
    ]
    assert reopened.get_task("t1").host_id == "h1"  # type: ignore[union-attr]
    reopened.close()


def test_a_task_keeps_only_its_latest_events(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    journal = TaskJournal(store, str, lambda: 0.0)
    for i in range(TASK_EVENTS_KEPT + 20):
        journal.note(["t1"], "pulling", f"pull {i}", at=float(i))
    journal.note(["t2"], "pulling", "another task's", at=1.0)
    kept = [e.message for e in store.task_events("t1")]
    assert kept == [f"pull {i}" for i in range(20, TASK_EVENTS_KEPT + 20)]
    assert [e.message for e in store.task_events("t2")] == ["another task's"]
    store.close()


def test_only_the_journal_writes_tasks() -> None:
    writers = []
    for path in sorted((ROOT / "controller").rglob("*.py")):
        if path.parts[-2] == "store" or path == ROOT / "controller" / "scheduler" / "journal.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("add_task", "update_task"):
                writers.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
    assert writers == [], "write tasks through TaskJournal (controller/scheduler/journal.py), not the store"
