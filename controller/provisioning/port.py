"""What the burst reconciler needs of the controller, and nothing more (the shape of Nomad's
dangling-container reconciler: narrow functions, never the whole object). The server's Controller
implements it; tests may hand the reconciler anything else that does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.configs.fleet import FleetConfiguration
from controller.placement.model import Requirements
from controller.store.records import HostRecord, TaskRecord


class ControllerPort(Protocol):
    @property
    def fleets(self) -> Mapping[str, FleetConfiguration]:
        """The applied fleets by name: which may provision instances, and their idle rules."""
        ...

    def host_facts(self, host: HostRecord) -> pb.HostFacts:
        """A registered host's facts (its cloud instance id: which launch it is)."""
        ...

    async def task_requirements(self, task: TaskRecord) -> Requirements:
        """What the task needs, as placement reads it (the image's platforms looked up)."""
        ...

    def host_fits(self, req: Requirements) -> bool:
        """Whether a registered host fits now: then the scheduler places it, and nothing launches."""
        ...

    def remove_host(self, host_id: str, reason: str) -> object:
        """Forgets a host whose instance is gone; its active tasks fail with `reason`."""
        ...

    def save_task(self, task: TaskRecord) -> None:
        """Writes a changed task (its provisioning reason), with the event history that change makes."""
        ...

    def publish_status(self, task: TaskRecord) -> None:
        """Tells the task's watchers (dstackctl submit, ps) that it changed."""
        ...

    def wake(self) -> None:
        """Runs a scheduling pass soon (a host went away: its tasks may be retried)."""
        ...

    def ca_fingerprint(self) -> str:
        """What a launch's join token pins: the sha256 of the controller's CA certificate."""
        ...
