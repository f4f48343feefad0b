from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_EVENT_KIND_UNSPECIFIED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_STARTED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_EXITED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_REFUSED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_FAILED_TO_START: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_LOST: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_SUPERSEDED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_PULLING: _ClassVar[TaskEventKind]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_PENDING: _ClassVar[TaskStatus]
    TASK_STATUS_PROVISIONING: _ClassVar[TaskStatus]
    TASK_STATUS_RUNNING: _ClassVar[TaskStatus]
    TASK_STATUS_DONE: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED: _ClassVar[TaskStatus]
    TASK_STATUS_STOPPED: _ClassVar[TaskStatus]
    TASK_STATUS_REFUSED: _ClassVar[TaskStatus]

class HostStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOST_STATUS_UNSPECIFIED: _ClassVar[HostStatus]
    HOST_STATUS_ONLINE: _ClassVar[HostStatus]
    HOST_STATUS_OFFLINE: _ClassVar[HostStatus]
    HOST_STATUS_REMOVED: _ClassVar[HostStatus]
TASK_EVENT_KIND_UNSPECIFIED: TaskEventKind
TASK_EVENT_KIND_STARTED: TaskEventKind
TASK_EVENT_KIND_EXITED: TaskEventKind
TASK_EVENT_KIND_REFUSED: TaskEventKind
TASK_EVENT_KIND_FAILED_TO_START: TaskEventKind
TASK_EVENT_KIND_LOST: TaskEventKind
TASK_EVENT_KIND_SUPERSEDED: TaskEventKind
TASK_EVENT_KIND_PULLING: TaskEventKind
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_PENDING: TaskStatus
TASK_STATUS_PROVISIONING: TaskStatus
TASK_STATUS_RUNNING: TaskStatus
TASK_STATUS_DONE: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_STOPPED: TaskStatus
TASK_STATUS_REFUSED: TaskStatus
HOST_STATUS_UNSPECIFIED: HostStatus
HOST_STATUS_ONLINE: HostStatus
HOST_STATUS_OFFLINE: HostStatus
HOST_STATUS_REMOVED: HostStatus

class CpuInfo(_message.Message):
    __slots__ = ("vendor", "model", "cores", "threads", "flags")
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    vendor: str
    model: str
    cores: int
    threads: int
    flags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, vendor: _Optional[str] = ..., model: _Optional[str] = ..., cores: _Optional[int] = ..., threads: _Optional[int] = ..., flags: _Optional[_Iterable[str]] = ...) -> None: ...

class Disk(_message.Message):
    __slots__ = ("path", "size_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class NvmeDevice(_message.Message):
    __slots__ = ("name", "model", "serial", "transport", "size_bytes", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    serial: str
    transport: str
    size_bytes: int
    kind: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., transport: _Optional[str] = ..., size_bytes: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("vendor", "name", "memory_bytes")
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    vendor: str
    name: str
    memory_bytes: int
    def __init__(self, vendor: _Optional[str] = ..., name: _Optional[str] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class CloudIdentity(_message.Message):
    __slots__ = ("provider", "region", "zone", "zone_id", "instance_type", "instance_id", "spot", "hyperv_generation")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    ZONE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SPOT_FIELD_NUMBER: _ClassVar[int]
    HYPERV_GENERATION_FIELD_NUMBER: _ClassVar[int]
    provider: str
    region: str
    zone: str
    zone_id: str
    instance_type: str
    instance_id: str
    spot: bool
    hyperv_generation: str
    def __init__(self, provider: _Optional[str] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., zone_id: _Optional[str] = ..., instance_type: _Optional[str] = ..., instance_id: _Optional[str] = ..., spot: _Optional[bool] = ..., hyperv_generation: _Optional[str] = ...) -> None: ...

class HostFacts(_message.Message):
    __slots__ = ("arch", "arch_raw", "cpu", "memory_bytes", "disks", "nvme", "gpus", "emulators", "cloud", "region", "zone", "labels", "hostname", "agent_version", "fleet", "overridden", "warnings", "policy")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARCH_FIELD_NUMBER: _ClassVar[int]
    ARCH_RAW_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    NVME_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    EMULATORS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    arch: str
    arch_raw: str
    cpu: CpuInfo
    memory_bytes: int
    disks: _containers.RepeatedCompositeFieldContainer[Disk]
    nvme: _containers.RepeatedCompositeFieldContainer[NvmeDevice]
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    emulators: _containers.RepeatedScalarFieldContainer[str]
    cloud: CloudIdentity
    region: str
    zone: str
    labels: _containers.ScalarMap[str, str]
    hostname: str
    agent_version: str
    fleet: str
    overridden: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    policy: HostPolicy
    def __init__(self, arch: _Optional[str] = ..., arch_raw: _Optional[str] = ..., cpu: _Optional[_Union[CpuInfo, _Mapping]] = ..., memory_bytes: _Optional[int] = ..., disks: _Optional[_Iterable[_Union[Disk, _Mapping]]] = ..., nvme: _Optional[_Iterable[_Union[NvmeDevice, _Mapping]]] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., emulators: _Optional[_Iterable[str]] = ..., cloud: _Optional[_Union[CloudIdentity, _Mapping]] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., hostname: _Optional[str] = ..., agent_version: _Optional[str] = ..., fleet: _Optional[str] = ..., overridden: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[HostPolicy, _Mapping]] = ...) -> None: ...

class HostPolicy(_message.Message):
    __slots__ = ("host_paths", "allow", "never", "allow_privileged")
    HOST_PATHS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    NEVER_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    host_paths: str
    allow: _containers.RepeatedScalarFieldContainer[str]
    never: _containers.RepeatedScalarFieldContainer[str]
    allow_privileged: bool
    def __init__(self, host_paths: _Optional[str] = ..., allow: _Optional[_Iterable[str]] = ..., never: _Optional[_Iterable[str]] = ..., allow_privileged: _Optional[bool] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("join_token", "facts", "name", "csr")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    facts: HostFacts
    name: str
    csr: bytes
    def __init__(self, join_token: _Optional[str] = ..., facts: _Optional[_Union[HostFacts, _Mapping]] = ..., name: _Optional[str] = ..., csr: _Optional[bytes] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("host_id", "host_name", "credential", "certificate", "ca_certificate", "agent_port")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_PORT_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    host_name: str
    credential: str
    certificate: bytes
    ca_certificate: bytes
    agent_port: int
    def __init__(self, host_id: _Optional[str] = ..., host_name: _Optional[str] = ..., credential: _Optional[str] = ..., certificate: _Optional[bytes] = ..., ca_certificate: _Optional[bytes] = ..., agent_port: _Optional[int] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "task_event", "log", "facts_update", "renew", "notice")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    TASK_EVENT_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    FACTS_UPDATE_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    task_event: TaskEvent
    log: LogChunk
    facts_update: HostFacts
    renew: RenewCertificate
    notice: HostNotice
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., task_event: _Optional[_Union[TaskEvent, _Mapping]] = ..., log: _Optional[_Union[LogChunk, _Mapping]] = ..., facts_update: _Optional[_Union[HostFacts, _Mapping]] = ..., renew: _Optional[_Union[RenewCertificate, _Mapping]] = ..., notice: _Optional[_Union[HostNotice, _Mapping]] = ...) -> None: ...

class HostNotice(_message.Message):
    __slots__ = ("provider", "kind", "not_before_ms", "text")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    kind: str
    not_before_ms: int
    text: str
    def __init__(self, provider: _Optional[str] = ..., kind: _Optional[str] = ..., not_before_ms: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class RenewCertificate(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("facts", "container_task_ids", "host_id", "containers")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    facts: HostFacts
    container_task_ids: _containers.RepeatedScalarFieldContainer[str]
    host_id: str
    containers: _containers.RepeatedCompositeFieldContainer[TaskContainer]
    def __init__(self, facts: _Optional[_Union[HostFacts, _Mapping]] = ..., container_task_ids: _Optional[_Iterable[str]] = ..., host_id: _Optional[str] = ..., containers: _Optional[_Iterable[_Union[TaskContainer, _Mapping]]] = ...) -> None: ...

class TaskContainer(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at_ms",)
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    sent_at_ms: int
    def __init__(self, sent_at_ms: _Optional[int] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "kind", "exit_code", "reason", "image_platform", "at_ms", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    kind: TaskEventKind
    exit_code: int
    reason: str
    image_platform: str
    at_ms: int
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., kind: _Optional[_Union[TaskEventKind, str]] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., image_platform: _Optional[str] = ..., at_ms: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("stream", "seq", "ts_ns", "data")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stream: LogStream
    seq: int
    ts_ns: int
    data: bytes
    def __init__(self, stream: _Optional[_Union[LogStream, str]] = ..., seq: _Optional[int] = ..., ts_ns: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("task_id", "lines", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ..., attempt: _Optional[int] = ...) -> None: ...

class ControllerMessage(_message.Message):
    __slots__ = ("welcome", "assign", "stop", "release", "certificate")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assign: Assignment
    stop: StopTask
    release: Release
    certificate: HostCertificate
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assign: _Optional[_Union[Assignment, _Mapping]] = ..., stop: _Optional[_Union[StopTask, _Mapping]] = ..., release: _Optional[_Union[Release, _Mapping]] = ..., certificate: _Optional[_Union[HostCertificate, _Mapping]] = ...) -> None: ...

class HostCertificate(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    def __init__(self, certificate: _Optional[bytes] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("host_id", "host_name", "heartbeat_interval_s")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    host_name: str
    heartbeat_interval_s: int
    def __init__(self, host_id: _Optional[str] = ..., host_name: _Optional[str] = ..., heartbeat_interval_s: _Optional[int] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task_id", "task_name", "run", "stdout_offset", "stderr_offset", "started", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    STDOUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STDERR_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_name: str
    run: RunSpec
    stdout_offset: int
    stderr_offset: int
    started: bool
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., run: _Optional[_Union[RunSpec, _Mapping]] = ..., stdout_offset: _Optional[int] = ..., stderr_offset: _Optional[int] = ..., started: _Optional[bool] = ..., attempt: _Optional[int] = ...) -> None: ...

class RunSpec(_message.Message):
    __slots__ = ("image", "commands", "env", "cpu_limit", "memory_limit_bytes", "working_dir", "privileged", "always_pull", "shm_size_bytes", "mounts")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_PULL_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    image: str
    commands: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    cpu_limit: float
    memory_limit_bytes: int
    working_dir: str
    privileged: bool
    always_pull: bool
    shm_size_bytes: int
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    def __init__(self, image: _Optional[str] = ..., commands: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., cpu_limit: _Optional[float] = ..., memory_limit_bytes: _Optional[int] = ..., working_dir: _Optional[str] = ..., privileged: _Optional[bool] = ..., always_pull: _Optional[bool] = ..., shm_size_bytes: _Optional[int] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("source", "target", "volume", "cloud_volume_id", "device_serial", "lun")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    CLOUD_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    LUN_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    volume: str
    cloud_volume_id: str
    device_serial: str
    lun: int
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., volume: _Optional[str] = ..., cloud_volume_id: _Optional[str] = ..., device_serial: _Optional[str] = ..., lun: _Optional[int] = ...) -> None: ...

class StopTask(_message.Message):
    __slots__ = ("task_id", "abort", "grace_s", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    abort: bool
    grace_s: int
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., abort: _Optional[bool] = ..., grace_s: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskHistoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TaskHistoryEntry(_message.Message):
    __slots__ = ("at_ms", "kind", "message")
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    at_ms: int
    kind: str
    message: str
    def __init__(self, at_ms: _Optional[int] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TaskHistoryResponse(_message.Message):
    __slots__ = ("task", "entries")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    task: Task
    entries: _containers.RepeatedCompositeFieldContainer[TaskHistoryEntry]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[TaskHistoryEntry, _Mapping]]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("kind", "configuration_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    configuration_json: str
    def __init__(self, kind: _Optional[str] = ..., configuration_json: _Optional[str] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("kind", "name", "action")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    action: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("kind", "name", "force")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    force: bool
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFleetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Fleet(_message.Message):
    __slots__ = ("name", "configuration_json", "status", "error", "created_at_ms", "hosts", "instances")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    configuration_json: str
    status: str
    error: str
    created_at_ms: int
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    instances: _containers.RepeatedCompositeFieldContainer[CloudInstance]
    def __init__(self, name: _Optional[str] = ..., configuration_json: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., instances: _Optional[_Iterable[_Union[CloudInstance, _Mapping]]] = ...) -> None: ...

class CloudInstance(_message.Message):
    __slots__ = ("backend", "region", "zone", "instance_type", "instance_id", "status", "host", "spot", "price", "launched_at_ms", "task", "reason")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SPOT_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LAUNCHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    backend: str
    region: str
    zone: str
    instance_type: str
    instance_id: str
    status: str
    host: str
    spot: bool
    price: float
    launched_at_ms: int
    task: str
    reason: str
    def __init__(self, backend: _Optional[str] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., instance_type: _Optional[str] = ..., instance_id: _Optional[str] = ..., status: _Optional[str] = ..., host: _Optional[str] = ..., spot: _Optional[bool] = ..., price: _Optional[float] = ..., launched_at_ms: _Optional[int] = ..., task: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListFleetsResponse(_message.Message):
    __slots__ = ("fleets",)
    FLEETS_FIELD_NUMBER: _ClassVar[int]
    fleets: _containers.RepeatedCompositeFieldContainer[Fleet]
    def __init__(self, fleets: _Optional[_Iterable[_Union[Fleet, _Mapping]]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Volume(_message.Message):
    __slots__ = ("name", "configuration_json", "status", "error", "created_at_ms", "attached")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    name: str
    configuration_json: str
    status: str
    error: str
    created_at_ms: int
    attached: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., configuration_json: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., attached: _Optional[_Iterable[str]] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ...) -> None: ...

class OffersRequest(_message.Message):
    __slots__ = ("configuration_json",)
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    configuration_json: str
    def __init__(self, configuration_json: _Optional[str] = ...) -> None: ...

class Offer(_message.Message):
    __slots__ = ("host", "chosen", "reason", "arch", "region", "zone", "fleet", "backend", "cpu_free", "memory_free_bytes", "gpus_free", "status", "volumes", "instance_type", "spot", "price", "has_price", "vcpus", "memory_bytes", "gpus", "state")
    HOST_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    CPU_FREE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FREE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SPOT_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    HAS_PRICE_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    host: str
    chosen: bool
    reason: str
    arch: str
    region: str
    zone: str
    fleet: str
    backend: str
    cpu_free: float
    memory_free_bytes: int
    gpus_free: int
    status: str
    volumes: _containers.RepeatedScalarFieldContainer[str]
    instance_type: str
    spot: bool
    price: float
    has_price: bool
    vcpus: float
    memory_bytes: int
    gpus: int
    state: HostStatus
    def __init__(self, host: _Optional[str] = ..., chosen: _Optional[bool] = ..., reason: _Optional[str] = ..., arch: _Optional[str] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., fleet: _Optional[str] = ..., backend: _Optional[str] = ..., cpu_free: _Optional[float] = ..., memory_free_bytes: _Optional[int] = ..., gpus_free: _Optional[int] = ..., status: _Optional[str] = ..., volumes: _Optional[_Iterable[str]] = ..., instance_type: _Optional[str] = ..., spot: _Optional[bool] = ..., price: _Optional[float] = ..., has_price: _Optional[bool] = ..., vcpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ..., state: _Optional[_Union[HostStatus, str]] = ...) -> None: ...

class OffersResponse(_message.Message):
    __slots__ = ("offers", "reason", "cloud_offers", "cloud_notes", "cloud_offers_left_out")
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLOUD_OFFERS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_NOTES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_OFFERS_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    offers: _containers.RepeatedCompositeFieldContainer[Offer]
    reason: str
    cloud_offers: _containers.RepeatedCompositeFieldContainer[Offer]
    cloud_notes: _containers.RepeatedScalarFieldContainer[str]
    cloud_offers_left_out: int
    def __init__(self, offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., reason: _Optional[str] = ..., cloud_offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., cloud_notes: _Optional[_Iterable[str]] = ..., cloud_offers_left_out: _Optional[int] = ...) -> None: ...

class CheckInstanceTypesRequest(_message.Message):
    __slots__ = ("names", "backend", "region")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    region: str
    def __init__(self, names: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class InstanceTypeCheck(_message.Message):
    __slots__ = ("name", "backend", "region", "found", "arch", "raw_arch", "vcpus", "memory_bytes", "gpus", "gpu_name", "hyperv_generations", "disk_controllers", "image", "generation", "disk_controller", "supported", "reason", "lifecycle", "lifecycle_note", "burstable", "local_nvme_bytes", "family")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    RAW_ARCH_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    HYPERV_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    DISK_CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DISK_CONTROLLER_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_NOTE_FIELD_NUMBER: _ClassVar[int]
    BURSTABLE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_NVME_BYTES_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    region: str
    found: bool
    arch: str
    raw_arch: str
    vcpus: int
    memory_bytes: int
    gpus: int
    gpu_name: str
    hyperv_generations: _containers.RepeatedScalarFieldContainer[str]
    disk_controllers: _containers.RepeatedScalarFieldContainer[str]
    image: str
    generation: str
    disk_controller: str
    supported: bool
    reason: str
    lifecycle: str
    lifecycle_note: str
    burstable: bool
    local_nvme_bytes: int
    family: str
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., region: _Optional[str] = ..., found: _Optional[bool] = ..., arch: _Optional[str] = ..., raw_arch: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ..., gpu_name: _Optional[str] = ..., hyperv_generations: _Optional[_Iterable[str]] = ..., disk_controllers: _Optional[_Iterable[str]] = ..., image: _Optional[str] = ..., generation: _Optional[str] = ..., disk_controller: _Optional[str] = ..., supported: _Optional[bool] = ..., reason: _Optional[str] = ..., lifecycle: _Optional[str] = ..., lifecycle_note: _Optional[str] = ..., burstable: _Optional[bool] = ..., local_nvme_bytes: _Optional[int] = ..., family: _Optional[str] = ...) -> None: ...

class CheckInstanceTypesResponse(_message.Message):
    __slots__ = ("checks", "notes")
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[InstanceTypeCheck]
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checks: _Optional[_Iterable[_Union[InstanceTypeCheck, _Mapping]]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveHostRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("configuration_json", "name")
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    configuration_json: str
    name: str
    def __init__(self, configuration_json: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "name", "status", "host", "reason", "has_exit_code", "exit_code", "image", "arch", "configuration_json", "submitted_at_ms", "started_at_ms", "finished_at_ms", "resources", "provisioning_reason", "state", "attempt", "retry", "submitted_by", "submitted_by_description")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PROVISIONING_REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: str
    host: str
    reason: str
    has_exit_code: bool
    exit_code: int
    image: str
    arch: str
    configuration_json: str
    submitted_at_ms: int
    started_at_ms: int
    finished_at_ms: int
    resources: str
    provisioning_reason: str
    state: TaskStatus
    attempt: int
    retry: str
    submitted_by: str
    submitted_by_description: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., host: _Optional[str] = ..., reason: _Optional[str] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., image: _Optional[str] = ..., arch: _Optional[str] = ..., configuration_json: _Optional[str] = ..., submitted_at_ms: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., resources: _Optional[str] = ..., provisioning_reason: _Optional[str] = ..., state: _Optional[_Union[TaskStatus, str]] = ..., attempt: _Optional[int] = ..., retry: _Optional[str] = ..., submitted_by: _Optional[str] = ..., submitted_by_description: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StreamLogsRequest(_message.Message):
    __slots__ = ("name", "follow", "stdout_offset", "stderr_offset", "tail", "since_ns")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    STDOUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STDERR_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_NS_FIELD_NUMBER: _ClassVar[int]
    name: str
    follow: bool
    stdout_offset: int
    stderr_offset: int
    tail: int
    since_ns: int
    def __init__(self, name: _Optional[str] = ..., follow: _Optional[bool] = ..., stdout_offset: _Optional[int] = ..., stderr_offset: _Optional[int] = ..., tail: _Optional[int] = ..., since_ns: _Optional[int] = ...) -> None: ...

class LogEvent(_message.Message):
    __slots__ = ("line", "status", "notice")
    LINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    line: LogLine
    status: Task
    notice: str
    def __init__(self, line: _Optional[_Union[LogLine, _Mapping]] = ..., status: _Optional[_Union[Task, _Mapping]] = ..., notice: _Optional[str] = ...) -> None: ...

class StopTaskRequest(_message.Message):
    __slots__ = ("name", "abort")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    abort: bool
    def __init__(self, name: _Optional[str] = ..., abort: _Optional[bool] = ...) -> None: ...

class ListHostsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Host(_message.Message):
    __slots__ = ("id", "name", "arch", "region", "zone", "status", "facts", "registered_at_ms", "last_seen_ms", "cpu_total", "cpu_used", "memory_total_bytes", "memory_used_bytes", "tasks", "fleet", "backend", "state", "notice", "notice_kind", "notice_not_before_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    NOTICE_KIND_FIELD_NUMBER: _ClassVar[int]
    NOTICE_NOT_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arch: str
    region: str
    zone: str
    status: str
    facts: HostFacts
    registered_at_ms: int
    last_seen_ms: int
    cpu_total: float
    cpu_used: float
    memory_total_bytes: int
    memory_used_bytes: int
    tasks: int
    fleet: str
    backend: str
    state: HostStatus
    notice: str
    notice_kind: str
    notice_not_before_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arch: _Optional[str] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., status: _Optional[str] = ..., facts: _Optional[_Union[HostFacts, _Mapping]] = ..., registered_at_ms: _Optional[int] = ..., last_seen_ms: _Optional[int] = ..., cpu_total: _Optional[float] = ..., cpu_used: _Optional[float] = ..., memory_total_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., tasks: _Optional[int] = ..., fleet: _Optional[str] = ..., backend: _Optional[str] = ..., state: _Optional[_Union[HostStatus, str]] = ..., notice: _Optional[str] = ..., notice_kind: _Optional[str] = ..., notice_not_before_ms: _Optional[int] = ...) -> None: ...

class ListHostsResponse(_message.Message):
    __slots__ = ("hosts",)
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    def __init__(self, hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ...) -> None: ...
