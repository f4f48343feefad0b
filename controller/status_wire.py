"""The status enums of controller.statuses <-> their proto twins (the `state` fields).

Messages carry a status twice for one release: the proto enum in `state` and the word in
`status` (for clients older than `state`). The controller fills both from one member; dstackctl
reads `state` and falls back to the word when `state` is UNSPECIFIED, i.e. the controller is
older than the field."""

from __future__ import annotations

from typing import cast

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.statuses import HostStatus, TaskStatus

# Paired by name (TaskStatus.RUNNING <-> TASK_STATUS_RUNNING): a member without a proto value
# fails here, at import; tests/unit/test_statuses.py catches a proto value without a member.
# (The stubs type Value() as int; the numbers are the enum's.)
_TASK_STATE = {s: cast(pb.TaskStatus, pb.TaskStatus.Value(f"TASK_STATUS_{s.name}")) for s in TaskStatus}
_HOST_STATE = {s: cast(pb.HostStatus, pb.HostStatus.Value(f"HOST_STATUS_{s.name}")) for s in HostStatus}
_TASK_FROM_STATE = {v: k for k, v in _TASK_STATE.items()}
_HOST_FROM_STATE = {v: k for k, v in _HOST_STATE.items()}


def task_state(status: TaskStatus) -> pb.TaskStatus:
    return _TASK_STATE[status]


def host_state(status: HostStatus) -> pb.HostStatus:
    return _HOST_STATE[status]


def task_status(task: pb.Task) -> TaskStatus | None:
    """The task's status: its `state`, else (an older controller) its word. None for a status
    this client does not know (a newer controller's): show `task.status`, decide nothing on it."""
    known = _TASK_FROM_STATE.get(task.state)
    if known is not None:
        return known
    try:
        return TaskStatus(task.status)
    except ValueError:
        return None


def host_status(host: pb.Host | pb.Offer) -> HostStatus | None:
    """A host's (or a host offer's) status, read as task_status reads a task's."""
    known = _HOST_FROM_STATE.get(host.state)
    if known is not None:
        return known
    try:
        return HostStatus(host.status)
    except ValueError:
        return None


def task_status_text(task: pb.Task) -> str:
    """The word dstackctl prints for the task's status."""
    status = task_status(task)
    return status.value if status is not None else task.status


def host_status_text(host: pb.Host | pb.Offer) -> str:
    status = host_status(host)
    return status.value if status is not None else host.status
