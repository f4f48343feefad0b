"""The task lifecycle from a table: each row is a task, a host's report, and what must follow."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.scheduling.lifecycle import (
    Effects,
    Report,
    on_host_lost,
    on_interrupted,
    on_report,
    on_stop_while_offline,
)
from controller.statuses import TaskStatus
from controller.store.records import TaskRecord

NOW = 1_000.0
H1, H2 = "h1", "h2"


def task(**fields: Any) -> TaskRecord:
    base = TaskRecord(id="t1", name="train", configuration_json="{}", image="img", submitted_at=1.0)
    return dataclasses.replace(base, **{"status": TaskStatus.PROVISIONING, "host_id": H1, **fields})


ENDED = Effects(changed=True, release_container=True, free_capacity=True, publish=True, wake_scheduler=True)
RETRY_ON_ERROR = '{"image": "img", "retry": {"on_events": ["error"]}}'
RETRY_ON_INTERRUPTION = '{"image": "img", "retry": {"on_events": ["interruption"], "duration": 60}}'
RETRY_ON_INTERRUPTION_1H = '{"image": "img", "retry": {"on_events": ["interruption"]}}'  # dstack's default: 1h


def retried(marker: str) -> Effects:
    return dataclasses.replace(ENDED, marker=marker)


# (name, task before, report, task fields after, effects)
ROWS: list[tuple[str, TaskRecord, Report, dict[str, Any], Effects]] = [
    (
        "started",
        task(),
        Report(pb.TASK_EVENT_KIND_STARTED, at=900.0),
        {"status": TaskStatus.RUNNING, "started_at": 900.0, "reason": ""},
        Effects(changed=True, publish=True),
    ),
    (
        "started again after a reconnect keeps the first start",
        task(status=TaskStatus.RUNNING, started_at=800.0),
        Report(pb.TASK_EVENT_KIND_STARTED, at=950.0),
        {"status": TaskStatus.RUNNING, "started_at": 800.0},
        Effects(publish=True),
    ),
    (
        "a report without a time takes the controller's",
        task(),
        Report(pb.TASK_EVENT_KIND_STARTED),
        {"status": TaskStatus.RUNNING, "started_at": NOW},
        Effects(changed=True, publish=True),
    ),
    (
        "exit 0 is done",
        task(status=TaskStatus.RUNNING),
        Report(pb.TASK_EVENT_KIND_EXITED, at=990.0, exit_code=0),
        {"status": TaskStatus.DONE, "exit_code": 0, "finished_at": 990.0, "reason": ""},
        ENDED,
    ),
    (
        "exit 7 is failed, with the code",
        task(status=TaskStatus.RUNNING),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=7),
        {"status": TaskStatus.FAILED, "exit_code": 7, "reason": "exited with code 7", "finished_at": NOW},
        ENDED,
    ),
    (
        "any exit after a stop request is stopped",
        task(status=TaskStatus.RUNNING, stop_requested=True),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=143),
        {"status": TaskStatus.STOPPED, "exit_code": 143, "reason": "stopped by user"},
        ENDED,
    ),
    (
        "failed to start",
        task(),
        Report(pb.TASK_EVENT_KIND_FAILED_TO_START, reason="no such image"),
        {"status": TaskStatus.FAILED, "reason": "no such image", "finished_at": NOW},
        ENDED,
    ),
    (
        "lost",
        task(status=TaskStatus.RUNNING),
        Report(pb.TASK_EVENT_KIND_LOST, reason="the container disappeared"),
        {"status": TaskStatus.FAILED, "reason": "the container disappeared"},
        ENDED,
    ),
    (
        "refused for the image's arch: pending again, never on that host or arch",
        task(refused_hosts=["h0"]),
        Report(pb.TASK_EVENT_KIND_REFUSED, reason="image is linux/arm64 only", image_platform="linux/arm64"),
        {
            "status": TaskStatus.PENDING,
            "host_id": "",
            "arch": "arm64",
            "refused_hosts": ["h0", H1],
            "refusal": "image is linux/arm64 only",
        },
        Effects(changed=True, free_capacity=True, wake_scheduler=True, refusal="image is linux/arm64 only"),
    ),
    (
        "refused with a platform of no supported arch keeps the task's arch",
        task(arch=""),
        Report(pb.TASK_EVENT_KIND_REFUSED, reason="emulated", image_platform="linux/s390x"),
        {"status": TaskStatus.PENDING, "arch": ""},
        Effects(changed=True, free_capacity=True, wake_scheduler=True, refusal="emulated"),
    ),
    (
        "refused after a stop request: stopped, nothing to place",
        task(stop_requested=True),
        Report(pb.TASK_EVENT_KIND_REFUSED, reason="no"),
        {"status": TaskStatus.STOPPED, "reason": "stopped by user", "host_id": "", "finished_at": NOW},
        Effects(changed=True, free_capacity=True, publish=True, wake_scheduler=True, refusal="no"),
    ),
    (
        "another host's task: its container goes, the task is untouched",
        task(host_id=H2, status=TaskStatus.RUNNING),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=0),
        {"status": TaskStatus.RUNNING, "host_id": H2},
        Effects(release_container=True),
    ),
    (
        "a finished task: a late report changes nothing",
        task(status=TaskStatus.DONE, exit_code=0),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=1),
        {"status": TaskStatus.DONE, "exit_code": 0},
        Effects(release_container=True),
    ),
    (
        "exit 3 with retry on error: pending again as attempt 2, no host, a marker for the log",
        task(status=TaskStatus.RUNNING, started_at=900.0, configuration_json=RETRY_ON_ERROR),
        Report(pb.TASK_EVENT_KIND_EXITED, at=990.0, exit_code=3),
        {
            "status": TaskStatus.PENDING,
            "attempt": 2,
            "host_id": "",
            "started_at": None,
            "exit_code": None,
            "finished_at": None,
            "retry_since": 990.0,
            "reason": "retrying as attempt 2: exited with code 3",
        },
        retried("--- attempt 2 (attempt 1: exited with code 3) ---"),
    ),
    (
        "exit 3 with retry on interruption only: failed as without retry",
        task(status=TaskStatus.RUNNING, configuration_json=RETRY_ON_INTERRUPTION),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=3),
        {"status": TaskStatus.FAILED, "attempt": 1, "reason": "exited with code 3", "exit_code": 3},
        ENDED,
    ),
    (
        "failed to start is an error: retried on error",
        task(configuration_json=RETRY_ON_ERROR),
        Report(pb.TASK_EVENT_KIND_FAILED_TO_START, reason="no such image"),
        {"status": TaskStatus.PENDING, "attempt": 2, "reason": "retrying as attempt 2: no such image"},
        retried("--- attempt 2 (attempt 1: no such image) ---"),
    ),
    (
        "a lost container is an interruption: retried on interruption",
        task(status=TaskStatus.RUNNING, configuration_json=RETRY_ON_INTERRUPTION),
        Report(pb.TASK_EVENT_KIND_LOST, reason="the container disappeared"),
        {"status": TaskStatus.PENDING, "attempt": 2},
        retried("--- attempt 2 (attempt 1: the container disappeared) ---"),
    ),
    (
        "a stop requested, then a failing exit: stopped, never retried",
        task(status=TaskStatus.RUNNING, stop_requested=True, configuration_json=RETRY_ON_ERROR),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=143),
        {"status": TaskStatus.STOPPED, "attempt": 1},
        ENDED,
    ),
    (
        "a report of attempt 1 when the task is on attempt 2 (same host): released, task untouched",
        task(status=TaskStatus.RUNNING, attempt=2),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=0, attempt=1),
        {"status": TaskStatus.RUNNING, "attempt": 2},
        Effects(release_container=True),
    ),
    (
        "the current attempt's report counts",
        task(status=TaskStatus.RUNNING, attempt=2),
        Report(pb.TASK_EVENT_KIND_EXITED, exit_code=0, attempt=2),
        {"status": TaskStatus.DONE, "attempt": 2},
        ENDED,
    ),
    (
        "an unknown kind is ignored",
        task(status=TaskStatus.RUNNING),
        Report(999),
        {"status": TaskStatus.RUNNING},
        Effects(),
    ),
]


@pytest.mark.parametrize(("before", "report", "after", "effects"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_transition(before: TaskRecord, report: Report, after: dict[str, Any], effects: Effects) -> None:
    snapshot = dataclasses.replace(before, refused_hosts=list(before.refused_hosts))
    result, got = on_report(before, H1, report, NOW)
    assert got == effects
    assert {k: getattr(result, k) for k in after} == after
    assert before == snapshot  # pure: the input is not modified
    if not got.changed:
        assert result == before


def test_report_from_proto_reads_milliseconds_and_no_time() -> None:
    event = pb.TaskEvent(task_id="t1", kind=pb.TASK_EVENT_KIND_EXITED, at_ms=1500, exit_code=3)
    assert Report.from_proto(event) == Report(pb.TASK_EVENT_KIND_EXITED, at=1.5, exit_code=3)
    assert Report.from_proto(pb.TaskEvent(kind=pb.TASK_EVENT_KIND_STARTED)).at is None


# The transitions without a report. Last heard 1970-01-01 00:13:20 UTC (800 s after the epoch).
HEARD = 800.0
LOST_ENDED = Effects(changed=True, free_capacity=True, publish=True, wake_scheduler=True)

# (name, task before, task fields after, effects)
HOST_LOST_ROWS: list[tuple[str, TaskRecord, dict[str, Any], Effects]] = [
    (
        "a running task of the lost host fails, naming the host and when it was last heard (UTC)",
        task(status=TaskStatus.RUNNING, started_at=700.0),
        {"status": TaskStatus.FAILED, "reason": "host node-1 lost (last heard 00:13:20)", "finished_at": NOW},
        LOST_ENDED,
    ),
    (
        "a task still starting there fails the same way",
        task(),
        {"status": TaskStatus.FAILED, "reason": "host node-1 lost (last heard 00:13:20)"},
        LOST_ENDED,
    ),
    (
        "a task the user asked to stop is stopped, as they asked",
        task(status=TaskStatus.RUNNING, stop_requested=True),
        {"status": TaskStatus.STOPPED, "reason": "stopped by user", "finished_at": NOW},
        LOST_ENDED,
    ),
    (
        "another host's task is untouched",
        task(host_id=H2, status=TaskStatus.RUNNING),
        {"status": TaskStatus.RUNNING, "host_id": H2},
        Effects(),
    ),
    (
        "retry on interruption: attempt 2, pending, the lost host remembered, the window from last heard",
        task(status=TaskStatus.RUNNING, started_at=700.0, configuration_json=RETRY_ON_INTERRUPTION_1H),
        {
            "status": TaskStatus.PENDING,
            "attempt": 2,
            "host_id": "",
            "lost_hosts": [H1],
            "retry_since": HEARD,
            "started_at": None,
            "reason": "retrying as attempt 2: host node-1 lost (last heard 00:13:20)",
        },
        dataclasses.replace(LOST_ENDED, marker="--- attempt 2 (attempt 1: host node-1 lost (last heard 00:13:20)) ---"),
    ),
    (
        "retry on interruption, its duration (60s) passed since last heard (200s ago): failed, saying so",
        task(status=TaskStatus.RUNNING, configuration_json=RETRY_ON_INTERRUPTION),
        {
            "status": TaskStatus.FAILED,
            "attempt": 1,
            "finished_at": NOW,
            "reason": "host node-1 lost (last heard 00:13:20); retry duration 1m exceeded",
        },
        LOST_ENDED,
    ),
    (
        "retry on error only: a lost host fails it as without retry",
        task(status=TaskStatus.RUNNING, configuration_json=RETRY_ON_ERROR),
        {"status": TaskStatus.FAILED, "attempt": 1, "reason": "host node-1 lost (last heard 00:13:20)"},
        LOST_ENDED,
    ),
    (
        "a finished task keeps its end",
        task(status=TaskStatus.DONE, exit_code=0, finished_at=500.0),
        {"status": TaskStatus.DONE, "finished_at": 500.0},
        Effects(),
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "effects"), [r[1:] for r in HOST_LOST_ROWS], ids=[r[0] for r in HOST_LOST_ROWS]
)
def test_host_lost(before: TaskRecord, after: dict[str, Any], effects: Effects) -> None:
    snapshot = dataclasses.replace(before)
    result, got = on_host_lost(before, H1, "node-1", HEARD, NOW)
    assert got == effects
    assert {k: getattr(result, k) for k in after} == after
    assert before == snapshot
    if not got.changed:
        assert result == before


def test_stop_while_the_host_is_offline_stops_at_once_and_frees_what_it_held() -> None:
    before = task(status=TaskStatus.RUNNING)
    result, got = on_stop_while_offline(before, NOW)
    assert got == LOST_ENDED and not got.release_container  # nobody to send it to now
    assert (result.status, result.reason, result.finished_at) == (
        TaskStatus.STOPPED,
        "stopped while its host was offline",
        NOW,
    )
    assert result.stop_requested and before.status == TaskStatus.RUNNING


def test_stop_while_offline_leaves_a_finished_task_alone() -> None:
    before = task(status=TaskStatus.FAILED, reason="exited with code 1")
    assert on_stop_while_offline(before, NOW) == (before, Effects())


# The cloud's interruption notice: the host is still there, so its containers are released at once.
NOTICE = "spot terminate at 12:34:56 UTC"
INTERRUPTED_ROWS: list[tuple[str, TaskRecord, dict[str, Any], Effects]] = [
    (
        "a running task of the host fails as interrupted, with the notice",
        task(status=TaskStatus.RUNNING, started_at=700.0),
        {"status": TaskStatus.FAILED, "reason": f"interrupted: {NOTICE}", "finished_at": NOW},
        ENDED,
    ),
    (
        "a task still starting there fails the same way",
        task(),
        {"status": TaskStatus.FAILED, "reason": f"interrupted: {NOTICE}", "finished_at": NOW},
        ENDED,
    ),
    (
        "a task the user asked to stop is stopped, as they asked",
        task(status=TaskStatus.RUNNING, stop_requested=True),
        {"status": TaskStatus.STOPPED, "reason": "stopped by user", "finished_at": NOW},
        ENDED,
    ),
    (
        "another host's task is untouched",
        task(host_id=H2, status=TaskStatus.RUNNING),
        {"status": TaskStatus.RUNNING, "host_id": H2, "reason": ""},
        Effects(),
    ),
    (
        "a pending task is untouched",
        task(host_id="", status=TaskStatus.PENDING),
        {"status": TaskStatus.PENDING},
        Effects(),
    ),
    (
        "a finished task keeps its end",
        task(status=TaskStatus.DONE, exit_code=0, finished_at=500.0),
        {"status": TaskStatus.DONE, "finished_at": 500.0},
        Effects(),
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "effects"), [r[1:] for r in INTERRUPTED_ROWS], ids=[r[0] for r in INTERRUPTED_ROWS]
)
def test_interrupted(before: TaskRecord, after: dict[str, Any], effects: Effects) -> None:
    snapshot = dataclasses.replace(before)
    result, got = on_interrupted(before, H1, NOTICE, NOW)
    assert got == effects
    assert {k: getattr(result, k) for k in after} == after
    assert before == snapshot
    if not got.changed:
        assert result == before
