"""A task's event history from a table: each row is the stored task, the task the lifecycle (or a
service) made of it, and the history lines that change must add. The `new` records come from the
real transitions (controller/scheduling/lifecycle.py) wherever one exists."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.scheduling.host_loss import clock_text
from controller.scheduling.lifecycle import Report, on_host_lost, on_report, on_stop_while_offline
from controller.scheduling.task_events import events_between
from controller.statuses import TaskStatus
from controller.store.records import TaskRecord

NOW = 1_000.0
NAMES = {"h1": "node-1", "h2": "node-2"}


def host_name(host_id: str) -> str:
    return NAMES.get(host_id, host_id)


def task(**fields: Any) -> TaskRecord:
    base = TaskRecord(id="t1", name="train", configuration_json="{}", image="busybox:1.36", submitted_at=10.0)
    return dataclasses.replace(base, **fields)


PLACED = task(status=TaskStatus.PROVISIONING, host_id="h1")
RUNNING = task(status=TaskStatus.RUNNING, host_id="h1", started_at=500.0)


def reported(old: TaskRecord, kind: int, **fields: Any) -> TaskRecord:
    return on_report(old, old.host_id, Report(kind, **fields), NOW)[0]


def retried(old: TaskRecord) -> TaskRecord:
    # TaskRecord.attempt arrives with retries (another branch): the derivation reads it when present.
    new = dataclasses.replace(old, status=TaskStatus.PENDING, host_id="")
    setattr(new, "attempt", 2)  # noqa: B010 (the field does not exist on this branch's record)
    return new


# (name, stored task or None, task written, [(at, kind, message)])
ROWS: list[tuple[str, TaskRecord | None, TaskRecord, list[tuple[float, str, str]]]] = [
    (
        "submitted, nothing fits yet",
        None,
        task(reason="no host fits"),
        [(10.0, "submitted", "submitted (busybox:1.36)")],
    ),
    (
        "submitted and placed at once (one write)",
        None,
        PLACED,
        [(10.0, "submitted", "submitted (busybox:1.36)"), (NOW, "placed", "placed on node-1")],
    ),
    ("placed by a later pass", task(reason="no host fits"), PLACED, [(NOW, "placed", "placed on node-1")]),
    (
        "a cloud instance launched for it",
        task(reason="no host fits"),
        task(
            reason="no host fits", provisioning_reason="launched m7g.large i-0abc in eu-west-1a, waiting for its agent"
        ),
        [(NOW, "cloud", "launched m7g.large i-0abc in eu-west-1a, waiting for its agent")],
    ),
    (
        "the same cloud word again says nothing new",
        task(provisioning_reason="no cloud offer fits"),
        task(provisioning_reason="no cloud offer fits"),
        [],
    ),
    ("a new placement reason alone is no event", task(reason="a"), task(reason="b"), []),
    (
        "started (at the host's time)",
        PLACED,
        reported(PLACED, pb.TASK_EVENT_KIND_STARTED, at=900.0),
        [(900.0, "started", "started on node-1")],
    ),
    ("re-adopted after a reconnect", RUNNING, reported(RUNNING, pb.TASK_EVENT_KIND_STARTED, at=950.0), []),
    (
        "exited 0",
        RUNNING,
        reported(RUNNING, pb.TASK_EVENT_KIND_EXITED, at=960.0, exit_code=0),
        [(960.0, "exited", "exited 0"), (960.0, "done", "done")],
    ),
    (
        "exited 3",
        RUNNING,
        reported(RUNNING, pb.TASK_EVENT_KIND_EXITED, at=960.0, exit_code=3),
        [(960.0, "exited", "exited 3"), (960.0, "failed", "failed: exited with code 3")],
    ),
    (
        "refused by its host: back to pending",
        PLACED,
        reported(
            PLACED,
            pb.TASK_EVENT_KIND_REFUSED,
            reason="refused: image x is linux/arm64, this host is linux/amd64",
            image_platform="linux/arm64",
        ),
        [(NOW, "refused", "refused by node-1: refused: image x is linux/arm64, this host is linux/amd64")],
    ),
    (
        "failed to start",
        PLACED,
        reported(PLACED, pb.TASK_EVENT_KIND_FAILED_TO_START, at=905.0, reason="pull failed: manifest unknown"),
        [(905.0, "failed", "failed: pull failed: manifest unknown")],
    ),
    (
        "container lost",
        RUNNING,
        reported(RUNNING, pb.TASK_EVENT_KIND_LOST, at=906.0, reason="the task's container disappeared from the host"),
        [(906.0, "failed", "failed: the task's container disappeared from the host")],
    ),
    (
        "host lost",
        RUNNING,
        on_host_lost(RUNNING, "h1", "node-1", 700.0, NOW)[0],
        [(NOW, "failed", f"failed: host node-1 lost (last heard {clock_text(700.0)})")],
    ),
    (
        "stop requested",
        RUNNING,
        dataclasses.replace(RUNNING, stop_requested=True),
        [(NOW, "stopping", "stop requested by user")],
    ),
    (
        "abort requested",
        RUNNING,
        dataclasses.replace(RUNNING, stop_requested=True, abort_requested=True),
        [(NOW, "stopping", "abort requested by user")],
    ),
    (
        "stopped after the stop was requested",
        dataclasses.replace(RUNNING, stop_requested=True),
        reported(dataclasses.replace(RUNNING, stop_requested=True), pb.TASK_EVENT_KIND_EXITED, at=970.0, exit_code=143),
        [(970.0, "exited", "exited 143"), (970.0, "stopped", "stopped by user")],
    ),
    (
        "stopped while its host was offline",
        RUNNING,
        on_stop_while_offline(RUNNING, NOW)[0],
        [(NOW, "stopped", "stopped while its host was offline")],
    ),
    (
        "a pending task stopped",
        task(),
        task(status=TaskStatus.STOPPED, reason="stopped by user", finished_at=NOW),
        [(NOW, "stopped", "stopped by user")],
    ),
    ("retried as a new attempt", RUNNING, retried(RUNNING), [(NOW, "retried", "retried as attempt 2")]),
    (
        "moved to another host (a host removed, then placed again)",
        PLACED,
        dataclasses.replace(PLACED, host_id="h2"),
        [(NOW, "placed", "placed on node-2")],
    ),
    ("nothing changed", RUNNING, RUNNING, []),
]


@pytest.mark.parametrize(("old", "new", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_events_between(old: TaskRecord | None, new: TaskRecord, expected: list[tuple[float, str, str]]) -> None:
    got = [(e.at, e.kind, e.message) for e in events_between(old, new, host_name, NOW)]
    assert got == expected


def test_an_unknown_host_is_named_by_its_id() -> None:
    got = events_between(task(), dataclasses.replace(PLACED, host_id="gone"), host_name, NOW)
    assert [e.message for e in got] == ["placed on gone"]
