"""A task's event history, derived from what changed between two versions of its record.

`events_between(old, new, host_name, now)` is pure: the controller saves tasks in one place (the
TaskJournal, controller/scheduler/journal.py), which calls it with the stored record and the one
it writes. Deriving events from the records, not from each caller, means no transition can be
written without its event (the anchors: `kubectl describe pod` Events, `nomad alloc status`
Recent Events). Events the record does not show (an agent pulling an image, a host going offline)
are noted by the journal with `noted`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from controller.statuses import TaskStatus
from controller.store.records import TaskHistoryEntry, TaskRecord

# The words of the `kind` column: what `dstackctl events --json` scripts match on.
SUBMITTED = "submitted"
PLACED = "placed"
CLOUD = "cloud"  # what cloud bursting says about a pending task (launching an instance for it)
PULLING = "pulling"
STARTED = "started"
HOST_OFFLINE = "host-offline"
REFUSED = "refused"
STOPPING = "stopping"
RETRIED = "retried"
EXITED = "exited"
DONE = "done"
STOPPED = "stopped"
FAILED = "failed"

HostName = Callable[[str], str]  # host id -> its name (the id itself when unknown)


def events_between(old: TaskRecord | None, new: TaskRecord, host_name: HostName, now: float) -> list[TaskHistoryEntry]:
    """What happened to the task between `old` (None: not stored yet) and `new`, oldest first."""
    out: list[TaskHistoryEntry] = []

    def add(kind: str, message: str, at: float | None = None) -> None:
        out.append(TaskHistoryEntry(at if at is not None else now, kind, message))

    if old is None:
        add(SUBMITTED, f"submitted ({new.image})", new.submitted_at)
        # What a task is before anything happened to it: so a task stored already placed says so.
        old = dataclasses.replace(
            new,
            status=TaskStatus.PENDING,
            host_id="",
            refused_hosts=[],
            stop_requested=False,
            provisioning_reason="",
            exit_code=None,
        )

    # A refusal comes first: the host that refused is the one the task just left.
    for host_id in new.refused_hosts:
        if host_id not in old.refused_hosts:
            add(REFUSED, f"refused by {host_name(host_id)}: {new.refusal or 'no reason given'}")
    if _attempt(new) != _attempt(old):
        add(RETRIED, f"retried as attempt {_attempt(new)}")
    if (
        new.provisioning_reason
        and new.provisioning_reason != old.provisioning_reason
        and new.status == TaskStatus.PENDING
    ):
        add(CLOUD, new.provisioning_reason)
    placed = new.host_id and new.status.active_on_host
    if placed and (new.host_id != old.host_id or not old.status.active_on_host):
        add(PLACED, f"placed on {host_name(new.host_id)}")
    if new.status == TaskStatus.RUNNING and old.status != TaskStatus.RUNNING:
        add(STARTED, f"started on {host_name(new.host_id)}" if new.host_id else "started", new.started_at)
    if new.stop_requested and not old.stop_requested and not new.terminal:
        add(STOPPING, "abort requested by user" if new.abort_requested else "stop requested by user")
    if new.exit_code is not None and new.exit_code != old.exit_code:
        add(EXITED, f"exited {new.exit_code}", new.finished_at)
    if new.terminal and new.status != old.status:
        add(*_ending(new), new.finished_at)
    return out


def noted(kind: str, message: str, at: float) -> TaskHistoryEntry:
    """An event the record does not show: an agent's word (pulling), or the host's (offline)."""
    return TaskHistoryEntry(at, kind, message)


def _ending(task: TaskRecord) -> tuple[str, str]:
    if task.status == TaskStatus.DONE:
        return DONE, "done"
    if task.status == TaskStatus.STOPPED:
        return STOPPED, task.reason or "stopped"
    word = FAILED if task.status == TaskStatus.FAILED else str(task.status)
    return word, f"{word}: {task.reason}" if task.reason else word


def _attempt(task: TaskRecord) -> int:
    # TaskRecord.attempt arrives with retries (another branch); until then every task has one.
    return int(getattr(task, "attempt", 1))
