"""The burst reconciler's parts against a real SQLite store, seeing the controller only through a
ControllerPort of the test's own (the port is the seam, not the thing under test): a launch's token
is claimed by its launch_id field, and bursting's word is the task's provisioning reason, written
beside the placement reason and never over a task the scheduler placed meanwhile."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.config import ControllerFileConfig
from controller.cli.format import task_reason
from controller.configs.fleet import FleetConfiguration
from controller.placement.model import Requirements
from controller.provisioning.claims import ClaimRefused
from controller.provisioning.reconciler import Burster
from controller.statuses import TaskStatus
from controller.store import Store, open_store
from controller.store.records import HostRecord, InstanceRecord, TaskRecord, TokenRecord


class Port:
    """Records what the reconciler asked of the controller."""

    def __init__(self) -> None:
        self.published: list[TaskRecord] = []
        self.store: Store | None = None  # set by burster(): where save_task writes

    @property
    def fleets(self) -> Mapping[str, FleetConfiguration]:
        return {}

    def host_facts(self, host: HostRecord) -> pb.HostFacts:
        return pb.HostFacts()

    async def task_requirements(self, task: TaskRecord) -> Requirements:
        return Requirements(arches=None)

    def host_fits(self, req: Requirements) -> bool:
        return False

    def remove_host(self, host_id: str, reason: str) -> object:
        return None

    def save_task(self, task: TaskRecord) -> None:
        assert self.store is not None
        self.store.update_task(task)

    def publish_status(self, task: TaskRecord) -> None:
        self.published.append(task)

    def wake(self) -> None:
        pass

    def ca_fingerprint(self) -> str:
        return "0" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    yield s
    s.close()


def burster(store: Store, port: Port) -> Burster:
    port.store = store
    return Burster(port, store, ControllerFileConfig(), "tag", "192.0.2.10:7443", clock=lambda: 1000.0)


def facts_of(instance_id: str) -> pb.HostFacts:
    return pb.HostFacts(cloud=pb.CloudIdentity(provider="aws", instance_id=instance_id))


def test_a_launch_token_is_claimed_by_its_launch_id_field(store: Store) -> None:
    b = burster(store, Port())
    store.put_instance(InstanceRecord("0a1b2c3d4e5f", "aws", "eu-west-1", "", "m7g.large", "cloud", 1.0,
                                      cloud_id="i-0abc"))  # fmt: skip
    # The description is free text now: the field alone names the launch.
    token = TokenRecord("t1", "join", "h", 1.0, launch_id="0a1b2c3d4e5f", description="made for a test")
    record = b.claim(token, facts_of("i-0abc"))
    assert record is not None and record.id == "0a1b2c3d4e5f"
    with pytest.raises(ClaimRefused, match="the host's metadata says i-0other"):
        b.claim(token, facts_of("i-0other"))
    # A token made for no launch is no claim, whatever its description says.
    assert b.claim(TokenRecord("t2", "join", "h", 1.0, description="launch 0a1b2c3d4e5f"), facts_of("i-0x")) is None


def test_bursting_writes_the_provisioning_reason_beside_placements(store: Store) -> None:
    port = Port()
    b = burster(store, port)
    pending = TaskRecord("k1", "train", "{}", "busybox", 1.0, status=TaskStatus.PENDING, reason="no host fits (memory)")
    store.add_task(pending)
    task = store.get_task("k1")
    assert task is not None
    b.launcher.note_pending(task, "no offer fits (3 of 3: arch)")
    got = store.get_task("k1")
    assert got is not None
    assert (got.reason, got.provisioning_reason) == ("no host fits (memory)", "no offer fits (3 of 3: arch)")
    assert [t.provisioning_reason for t in port.published] == ["no offer fits (3 of 3: arch)"]
    assert task_reason(got.reason, got.provisioning_reason) == (
        "no host fits (memory); cloud: no offer fits (3 of 3: arch)"
    )
    assert task_reason("", "no offer fits") == "cloud: no offer fits" and task_reason("x", "") == "x"


def test_a_task_placed_while_the_cloud_answered_is_not_written_back_to_pending(store: Store) -> None:
    b = burster(store, Port())
    store.add_task(TaskRecord("k1", "train", "{}", "busybox", 1.0, status=TaskStatus.PENDING, reason="no host fits"))
    stale = store.get_task("k1")
    placed = store.get_task("k1")
    assert stale is not None and placed is not None
    placed.status, placed.host_id, placed.reason = TaskStatus.PROVISIONING, "h1", ""
    store.update_task(placed)
    b.launcher.note_pending(stale, "launched m7g.large i-0abc in aws eu-west-1, waiting for its agent")
    assert store.get_task("k1") == placed
