"""Plain records the store reads and writes; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from controller.roles import Role
from controller.statuses import InstanceStatus, TaskStatus

TokenKind = Literal["join", "api"]


@dataclass
class TokenRecord:
    id: str
    kind: TokenKind
    secret_hash: str
    created_at: float
    expires_at: float | None = None  # None: never expires
    uses_left: int | None = None  # None: unlimited
    fleet: str = ""
    revoked: bool = False
    description: str = ""  # free text for `token list`; nothing parses it
    launch_id: str = ""  # a join token made for one cloud launch: that launch's id (InstanceRecord.id)
    role: Role | None = None  # an API token's role; None for join tokens

    def __post_init__(self) -> None:
        # The store's column holds the word ("" for a join token): read back, it becomes the member.
        self.role = Role(self.role) if self.role else None


@dataclass
class HostRecord:
    id: str
    name: str
    credential_hash: str
    facts_json: str
    arch: str
    registered_at: float
    last_seen: float
    region: str = ""
    zone: str = ""
    fleet: str = ""
    # Serials (hex) of the host certificates the controller accepts: the newest, and the one
    # before it until the agent has reconnected with the newest. Empty: none issued (--insecure).
    cert_serial: str = ""
    prev_cert_serial: str = ""

    def accepts_serial(self, serial: str) -> bool:
        return bool(serial) and serial in (self.cert_serial, self.prev_cert_serial)


@dataclass
class TaskRecord:
    id: str
    name: str
    configuration_json: str
    image: str
    submitted_at: float
    status: TaskStatus = TaskStatus.PENDING
    arch: str = ""  # required architecture: explicit, from the registry, or learnt from a refusal
    host_id: str = ""
    reason: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stop_requested: bool = False
    abort_requested: bool = False
    refused_hosts: list[str] = field(default_factory=list)
    refusal: str = ""  # the last host's refusal, kept as the reason while no other host fits
    # What cloud bursting says about a pending task (launched X, no offer fits, a quota error),
    # beside `reason`, which says why no registered host fits. Cleared when the task is placed.
    provisioning_reason: str = ""
    # Retries (controller/scheduling/retry.py): 1, 2, ...; each attempt runs in its own container,
    # and status and logs count only from the current one on the task's current host.
    attempt: int = 1
    # When the previous attempt was last heard of, for a retried task: its retry window counts from here.
    retry_since: float | None = None
    # Where the current attempt's lines start in the stored log, per stream: the agent counts each
    # attempt's lines from 0, the stored log is one sequence (attempt 1, a marker, attempt 2, ...).
    stdout_base: int = 0
    stderr_base: int = 0
    # Hosts an attempt of this task was lost on: not chosen again while they stay offline.
    lost_hosts: list[str] = field(default_factory=list)
    # Who submitted it: the API token's id, and that token's description as it was then (a token
    # revoked later still names its submitter). "" for tasks stored before tasks recorded it.
    submitted_by: str = ""
    submitted_by_description: str = ""

    def __post_init__(self) -> None:
        # The store's column holds the word: a row read back (or a test's "running") becomes the
        # member, and a word no status has fails here rather than somewhere downstream.
        self.status = TaskStatus(self.status)

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@dataclass
class ConfigRecord:
    """An applied fleet or volume: its configuration as the user wrote it (JSON of the model)."""

    kind: str  # fleet | volume
    name: str
    configuration_json: str
    created_at: float
    updated_at: float
    status: str = "active"
    error: str = ""


@dataclass
class InstanceRecord:
    """A cloud instance the controller launched (or is launching): its own bookkeeping. The
    cloud's tags say the same things, so a lost record is rebuilt from them."""

    id: str  # the launch id, also the instance's dstack-hybrid-launch tag and its join token's launch_id
    backend: str
    region: str
    zone: str
    instance_type: str
    fleet: str
    created_at: float
    spot: bool = False
    price: float | None = None
    task_id: str = ""  # the task it was launched for
    cloud_id: str = ""  # AWS instance id / Azure vmId: what the VM's metadata service reports
    cloud_name: str = ""  # Azure VM name (AWS: the instance id)
    token_id: str = ""
    status: InstanceStatus = InstanceStatus.LAUNCHING
    host_id: str = ""
    registered_at: float | None = None
    idle_since: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        self.status = InstanceStatus(self.status)  # the stored word -> the member (see TaskRecord)

    @property
    def gone(self) -> bool:
        return self.status.gone


@dataclass
class AttachmentRecord:
    """Where the cloud attached a volume to a host's instance: what the agent finds the block
    device by. Kept in the store so an assignment built after a restart still names the device."""

    volume: str  # the volume's name (its config)
    host_id: str
    volume_id: str  # the cloud's id of the volume when it was attached
    device_serial: str = ""  # AWS: the NVMe serial (the volume id without its dash)
    lun: int | None = None  # Azure: the data disk's LUN
    attached_at: float = 0.0


@dataclass(frozen=True)
class StoredLogLine:
    stream: int  # 1 stdout, 2 stderr (the proto's LogStream values)
    seq: int
    ts_ns: int
    data: bytes


@dataclass(frozen=True)
class TaskHistoryEntry:
    """One line of a task's event history (`dstackctl events`): what happened, when."""

    at: float  # epoch seconds
    kind: str  # one word (controller/scheduling/task_events.py names them)
    message: str  # the sentence shown, e.g. "placed on gpu-3"
