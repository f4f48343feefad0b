"""What a task becomes when its host reports on it, and what the controller must do next.

`on_report(task, host_id, report, now) -> (task, effects)` is pure: the caller stores the task
and carries out the effects (release the container, free the reservation, publish, wake the
scheduler), so every transition is a row in tests/unit/test_task_lifecycle.py. `on_host_lost` and
`on_stop_while_offline` are the transitions without a report: the host is not there to make one;
`on_interrupted` is the cloud's notice that it soon will not be.

Every failure that dstack's `retry` covers goes through `end_or_retry`: the task ends, or goes back
to pending as its next attempt (controller/scheduling/retry.py decides which)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.scheduling import taskspec
from controller.scheduling.host_loss import clock_text
from controller.scheduling.retry import RetryCause, decide
from controller.statuses import TaskStatus
from controller.store.records import TaskRecord

SUPPORTED_ARCHES = frozenset({"amd64", "arm64"})
STOPPED_BY_USER = "stopped by user"
STOPPED_WHILE_OFFLINE = "stopped while its host was offline"
INTERRUPTED = "interrupted: "  # + the notice's text; what `retry: on_events: [interruption]` matches


@dataclass(frozen=True)
class Report:
    """One TaskEvent from an agent, as the lifecycle needs it."""

    kind: int  # pb.TaskEventKind
    at: float | None = None  # when the host saw it (epoch seconds); None: when it arrived
    exit_code: int = 0
    reason: str = ""
    image_platform: str = ""  # a refusal's image platform, e.g. linux/arm64
    attempt: int = 1  # which attempt's container it is about

    @classmethod
    def from_proto(cls, event: pb.TaskEvent) -> Report:
        return cls(
            kind=event.kind,
            at=event.at_ms / 1000 if event.at_ms else None,
            exit_code=event.exit_code,
            reason=event.reason,
            image_platform=event.image_platform,
            attempt=attempt_of(event.attempt),
        )


def attempt_of(wire: int) -> int:
    """An attempt number from the wire: 0 is an agent older than attempts, which runs only first ones."""
    return wire or 1


@dataclass(frozen=True)
class Effects:
    changed: bool = False  # the task must be stored
    release_container: bool = False  # the host may remove the container
    free_capacity: bool = False  # the task no longer holds its host's cpu, memory and GPUs
    publish: bool = False  # followers must see the new status
    wake_scheduler: bool = False  # a pending task may fit now, or this one must be placed again
    refusal: str = ""  # the host refused the task: worth a warning in the controller's log
    # The task goes back to pending as a new attempt: the caller writes this line between the
    # attempts' logs (and where the new attempt's lines start), then stores the task.
    marker: str = ""


IGNORE = Effects()
NOT_YOURS = Effects(release_container=True)


def on_report(task: TaskRecord, host_id: str, report: Report, now: float) -> tuple[TaskRecord, Effects]:
    """The task after `report` from host `host_id`; `task` itself is not modified."""
    if task.host_id != host_id or task.terminal or report.attempt != task.attempt:
        # Not this host's, or not this attempt (any more): the container, if there is one, can go.
        return task, NOT_YOURS
    at = report.at if report.at is not None else now
    kind = report.kind
    if kind == pb.TASK_EVENT_KIND_STARTED:
        if task.status == TaskStatus.RUNNING:
            return task, Effects(publish=True)  # a re-adopted container: said again, nothing changes
        started = dataclasses.replace(task, status=TaskStatus.RUNNING, reason="", started_at=task.started_at or at)
        return started, Effects(changed=True, publish=True)
    if kind == pb.TASK_EVENT_KIND_EXITED:
        if task.stop_requested:
            status, reason = TaskStatus.STOPPED, STOPPED_BY_USER
        elif report.exit_code == 0:
            status, reason = TaskStatus.DONE, ""
        else:
            exited = dataclasses.replace(task, exit_code=report.exit_code)
            return end_or_retry(exited, RetryCause.ERROR, TaskStatus.FAILED, f"exited with code {report.exit_code}", at)
        ended = dataclasses.replace(task, status=status, reason=reason, exit_code=report.exit_code, finished_at=at)
        return ended, _ended()
    if kind == pb.TASK_EVENT_KIND_REFUSED:
        return _refused(task, host_id, report, at)
    if kind in (pb.TASK_EVENT_KIND_FAILED_TO_START, pb.TASK_EVENT_KIND_LOST):
        cause = RetryCause.ERROR if kind == pb.TASK_EVENT_KIND_FAILED_TO_START else RetryCause.INTERRUPTION
        return end_or_retry(task, cause, TaskStatus.FAILED, report.reason, at)
    return task, IGNORE


def end_or_retry(
    task: TaskRecord, cause: RetryCause, status: TaskStatus, reason: str, now: float, since: float | None = None
) -> tuple[TaskRecord, Effects]:
    """The current attempt ended by `cause` at `now`, last heard of at `since` (default `now`; the
    retry window counts from there): the task ends with `status` and `reason`, or its `retry`
    policy gives it another attempt, pending again with no host. Effects as for an ended task
    either way: this attempt's container may go, what it held is free. A task the user asked to
    stop is never retried. The one entry for every failure `retry` covers (a spot or maintenance
    notice too)."""
    try:
        policy = taskspec.parse(task.configuration_json).retry
    except ValueError:
        policy = None  # a stored configuration this controller cannot read has no retry to honour
    since = now if since is None else since
    decision = decide(policy, cause, since, now)
    if not decision.retry or task.stop_requested:
        full = f"{reason}; {decision.why_not}" if decision.why_not else reason
        return dataclasses.replace(task, status=status, reason=full, finished_at=now), _ended()
    attempt = task.attempt + 1
    retried = dataclasses.replace(
        task,
        status=TaskStatus.PENDING,
        reason=f"retrying as attempt {attempt}: {reason}",
        attempt=attempt,
        retry_since=since,
        host_id="",
        # The next attempt is a fresh start: created, not re-adopted, wherever it lands.
        started_at=None,
        exit_code=None,
        refusal="",
        provisioning_reason="",
    )
    marker = f"--- attempt {attempt} (attempt {task.attempt}: {reason}) ---"
    return retried, dataclasses.replace(_ended(), marker=marker)


def on_host_lost(
    task: TaskRecord, host_id: str, host_name: str, last_heard: float, now: float
) -> tuple[TaskRecord, Effects]:
    """The task after its host was declared lost: an interruption, so it ends now or is retried by
    its policy, and what it held is free. Nothing goes to the host (it is not there); when its agent
    returns, the container is released because that attempt is no longer current
    (Controller.on_hello). The retry window counts from `last_heard`: dstack counts it from the
    failed attempt's last word."""
    if task.host_id != host_id or task.terminal or not task.status.active_on_host:
        return task, IGNORE
    if task.stop_requested:
        # The user asked for the end; the host never confirmed it. Stopped is what they asked for.
        ended = dataclasses.replace(task, status=TaskStatus.STOPPED, reason=STOPPED_BY_USER, finished_at=now)
        return ended, _ended_away()
    reason = f"host {host_name} lost (last heard {clock_text(last_heard)})"
    after, effects = end_or_retry(task, RetryCause.INTERRUPTION, TaskStatus.FAILED, reason, now, last_heard or now)
    if not after.terminal:
        # Remembered for the history; while the host stays offline the `live` rule keeps the
        # next attempt off it, and a host with a notice is kept off by the `notice` rule.
        after = dataclasses.replace(after, lost_hosts=sorted({*task.lost_hosts, host_id}))
    return after, dataclasses.replace(effects, release_container=False)


def on_interrupted(task: TaskRecord, host_id: str, notice_text: str, now: float) -> tuple[TaskRecord, Effects]:
    """The task after its host's cloud announced an interruption (a spot reclaim, a scheduled
    reboot): it ends now rather than when the cloud pulls the plug, its container goes and what it
    held is free, so it is not counted on a host that has at most minutes left."""
    if task.host_id != host_id or task.terminal or not task.status.active_on_host:
        return task, IGNORE
    if task.stop_requested:
        return dataclasses.replace(task, status=TaskStatus.STOPPED, reason=STOPPED_BY_USER, finished_at=now), _ended()
    # dstack's `interruption`: the same retry event as a lost host.
    return end_or_retry(task, RetryCause.INTERRUPTION, TaskStatus.FAILED, INTERRUPTED + notice_text, now)


def on_stop_while_offline(task: TaskRecord, now: float) -> tuple[TaskRecord, Effects]:
    """`dstackctl stop` on a task whose host is offline: stopped at once, not when the host returns
    (which may be never); the agent gets a Release when it does."""
    if task.terminal:
        return task, IGNORE
    stopped = dataclasses.replace(
        task, status=TaskStatus.STOPPED, reason=STOPPED_WHILE_OFFLINE, stop_requested=True, finished_at=now
    )
    return stopped, _ended_away()


def _ended_away() -> Effects:
    # Ended without its host: nothing to send it now.
    return Effects(changed=True, free_capacity=True, publish=True, wake_scheduler=True)


def _ended() -> Effects:
    return Effects(changed=True, release_container=True, free_capacity=True, publish=True, wake_scheduler=True)


def _refused(task: TaskRecord, host_id: str, report: Report, at: float) -> tuple[TaskRecord, Effects]:
    """The host will not run it (an image for another architecture, say): never this host
    again, and never this arch again when the refusal names the image's, so there is no retry loop."""
    parts = report.image_platform.split("/")
    platform_arch = parts[1] if len(parts) > 1 else ""
    refused = dataclasses.replace(
        task,
        refused_hosts=sorted({*task.refused_hosts, host_id}),
        refusal=report.reason,
        arch=platform_arch if platform_arch in SUPPORTED_ARCHES else task.arch,
        host_id="",
    )
    if task.stop_requested:
        stopped = dataclasses.replace(refused, status=TaskStatus.STOPPED, reason=STOPPED_BY_USER, finished_at=at)
        ended = Effects(changed=True, free_capacity=True, publish=True, wake_scheduler=True, refusal=report.reason)
        return stopped, ended
    # Back to pending; the scheduler publishes where it went, or why nowhere, so a follower
    # never mistakes this moment for the final word.
    pending = dataclasses.replace(refused, status=TaskStatus.PENDING, reason=report.reason)
    return pending, Effects(changed=True, free_capacity=True, wake_scheduler=True, refusal=report.reason)
