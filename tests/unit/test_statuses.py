"""The status vocabularies: the words they print and store, the proto twins they travel as, and
how dstackctl reads a status from a controller older than the enum fields."""

from __future__ import annotations

import json

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.status_wire import host_state, host_status, host_status_text, task_state, task_status, task_status_text
from controller.statuses import HostStatus, InstanceStatus, TaskStatus
from controller.store.records import InstanceRecord, TaskRecord


def test_the_words_are_the_ones_dstackctl_prints_and_the_store_holds() -> None:
    # INTERFACES.md names these words; the store's status columns hold them: renaming one is
    # a user-visible change and needs a data migration, not an edit here.
    assert [s.value for s in TaskStatus] == [
        "pending", "provisioning", "running", "done", "failed", "stopped", "refused",
    ]  # fmt: skip
    assert [s.value for s in HostStatus] == ["online", "offline", "removed"]
    assert [s.value for s in InstanceStatus] == ["launching", "running", "terminating", "terminated", "failed"]


@pytest.mark.parametrize("status", [*TaskStatus, *HostStatus, *InstanceStatus])
def test_a_member_prints_as_its_word_wherever_it_is_formatted(status: TaskStatus) -> None:
    assert str(status) == f"{status}" == f"{status:<0}" == format(status) == status.value
    assert json.dumps({"status": status}) == json.dumps({"status": status.value})
    assert status == status.value  # compares (and hashes) as the word: a dict keyed by words finds it
    assert {status.value: 1}[status] == 1


def test_terminal_and_active_on_host() -> None:
    assert {s for s in TaskStatus if s.terminal} == {
        TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.REFUSED,
    }  # fmt: skip
    assert {s for s in TaskStatus if s.active_on_host} == {TaskStatus.PROVISIONING, TaskStatus.RUNNING}
    assert {s for s in InstanceStatus if s.gone} == {InstanceStatus.TERMINATED, InstanceStatus.FAILED}
    assert HostStatus.of(True) is HostStatus.ONLINE and HostStatus.of(False) is HostStatus.OFFLINE


def test_records_hold_members_and_refuse_a_word_no_status_has() -> None:
    task = TaskRecord(id="k", name="t", configuration_json="{}", image="busybox", submitted_at=1.0, status="running")  # type: ignore[arg-type]
    assert task.status is TaskStatus.RUNNING and not task.terminal
    with pytest.raises(ValueError, match="runing"):
        TaskRecord(id="k", name="t", configuration_json="{}", image="busybox", submitted_at=1.0, status="runing")  # type: ignore[arg-type]
    instance = InstanceRecord(
        id="l", backend="aws", region="r", zone="z", instance_type="t", fleet="f", created_at=1.0, status="failed"  # type: ignore[arg-type]
    )
    assert instance.status is InstanceStatus.FAILED and instance.gone


# ------------------------------------------------------------------ the wire
def test_every_proto_value_has_a_member_and_every_member_a_proto_value() -> None:
    """A value added on one side only would be a status one program cannot name."""
    pairs = ((TaskStatus, pb.TaskStatus, "TASK_STATUS_"), (HostStatus, pb.HostStatus, "HOST_STATUS_"))
    for enum, proto, prefix in pairs:
        names = [v.name for v in proto.DESCRIPTOR.values]
        wire = {name.removeprefix(prefix) for name in names if not name.endswith("_UNSPECIFIED")}
        assert wire == {s.name for s in enum}, proto.DESCRIPTOR.name
    assert {task_state(s) for s in TaskStatus} == set(pb.TaskStatus.values()) - {pb.TASK_STATUS_UNSPECIFIED}
    assert {host_state(s) for s in HostStatus} == set(pb.HostStatus.values()) - {pb.HOST_STATUS_UNSPECIFIED}


@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_task_status_reads_back_from_the_enum_alone_and_from_the_word_alone(status: TaskStatus) -> None:
    # From the bytes, as a client receives them: a new controller's (both), the enum alone,
    # and an older controller's, which has no field 24 and only the word.
    both = pb.Task.FromString(pb.Task(name="t", status=status.value, state=task_state(status)).SerializeToString())
    enum_only = pb.Task.FromString(pb.Task(name="t", state=task_state(status)).SerializeToString())
    word_only = pb.Task.FromString(pb.Task(name="t", status=status.value).SerializeToString())
    assert word_only.state == pb.TASK_STATUS_UNSPECIFIED
    for message in (both, enum_only, word_only):
        assert task_status(message) is status
        assert task_status_text(message) == status.value


@pytest.mark.parametrize("status", list(HostStatus))
def test_a_host_status_reads_back_from_the_enum_alone_and_from_the_word_alone(status: HostStatus) -> None:
    for message in (
        pb.Host(name="h", state=host_state(status)),
        pb.Host(name="h", status=status.value),
        pb.Offer(host="h", state=host_state(status)),
        pb.Offer(host="h", status=status.value),
    ):
        message = type(message).FromString(message.SerializeToString())
        assert host_status(message) is status and host_status_text(message) == status.value


def test_the_enum_wins_over_the_word() -> None:
    task = pb.Task(status="pending", state=pb.TASK_STATUS_RUNNING)
    assert task_status(task) is TaskStatus.RUNNING and task_status_text(task) == "running"


def test_a_status_newer_than_this_client_is_shown_as_sent_and_decides_nothing() -> None:
    # A later controller's value: an enum number this client's stubs do not name (proto3 keeps
    # it as a number), with its word beside it.
    task = pb.Task.FromString(pb.Task(status="hibernating", state=42).SerializeToString())  # type: ignore[arg-type]
    assert task.state == 42
    assert task_status(task) is None and task_status_text(task) == "hibernating"
    host = pb.Host(status="draining", state=9)  # type: ignore[arg-type]
    assert host_status(host) is None and host_status_text(host) == "draining"
