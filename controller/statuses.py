"""The status vocabularies: one enum per lifecycle, shared by the store, the services and dstackctl.

The values are the words dstackctl prints and the store's status columns hold, so a database
written before these enums existed reads back unchanged. On the wire each enum has a proto
twin (controller.status_wire maps between them). `str` is mixed in (3.10 has no StrEnum) so a
member compares equal to its word; __str__ returns the word, so an f-string prints "running",
never "TaskStatus.RUNNING"."""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    # str() and therefore format() and f-strings (which use str() once __str__ is overridden,
    # on 3.10 to 3.13 alike) print the word.
    def __str__(self) -> str:
        return str(self.value)


class TaskStatus(_Word):
    """pending -> provisioning -> running -> done | failed | stopped; refused when no host will run it."""

    PENDING = "pending"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    REFUSED = "refused"

    @property
    def terminal(self) -> bool:
        """The task has ended: nothing will change its status again."""
        return self in TERMINAL_TASK_STATUSES

    @property
    def active_on_host(self) -> bool:
        """The task holds a host's resources (placed there, starting or running)."""
        return self in (TaskStatus.PROVISIONING, TaskStatus.RUNNING)


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.REFUSED})


class HostStatus(_Word):
    """A registered host as the client API reports it. Hosts have no stored status: online and
    offline follow from when the host was last heard; removed is the answer to RemoveHost."""

    ONLINE = "online"
    OFFLINE = "offline"
    REMOVED = "removed"

    @classmethod
    def of(cls, live: bool) -> HostStatus:
        return cls.ONLINE if live else cls.OFFLINE


class InstanceStatus(_Word):
    """A cloud instance the controller launched. Launching covers the time from the launch call
    until the instance's agent registers; running once it has; terminating while the cloud
    deletes it; terminated and failed (the launch failed) are gone."""

    LAUNCHING = "launching"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"

    @property
    def gone(self) -> bool:
        return self in (InstanceStatus.TERMINATED, InstanceStatus.FAILED)


# What the client API shows for a running instance with no task since idle_since (the idle
# timer runs): not a stored status, only a word on the wire.
INSTANCE_IDLE = "idle"
