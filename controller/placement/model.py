"""What placement reasons about: a task's requirements and a view of each host. Pure data.

Every field added after the first release has a default, so callers that build these
positionally (the scheduler, tests) keep working."""

from __future__ import annotations

from dataclasses import dataclass, field

from dstack_hybrid.shared.host_policy import DEFAULT_POLICY, HostPolicy


@dataclass(frozen=True)
class GpuInfo:
    """One GPU of a host, as its agent reported it."""

    vendor: str  # nvidia, amd
    name: str  # e.g. "NVIDIA A100-SXM4-80GB"
    memory_bytes: int


@dataclass(frozen=True)
class GpuReq:
    """A task's GPU request (dstack's `gpu: nvidia:A100:80GB:2..4`)."""

    vendor: str | None = None  # None: any vendor (compared case-insensitively)
    names: tuple[str, ...] = ()  # empty: any; else a case-insensitive substring of the host GPU name
    memory_min: int | None = None  # per GPU; met at 95% (nvidia-smi shows 81559MiB for an "80GB" H100)
    memory_max: int | None = None  # per GPU
    count_min: int = 1  # what is allocated
    count_max: int | None = None  # the range's top; placement allocates count_min and never more


@dataclass(frozen=True)
class VolumeOption:
    """One candidate volume for a mount point."""

    name: str
    backend: str  # "local" volumes follow region/zone only; others also need a host on that backend
    region: str
    zone: str | None
    path: str


@dataclass(frozen=True)
class MountReq:
    path: str
    options: tuple[VolumeOption, ...]  # the user's preference order: the first that matches the host wins


@dataclass(frozen=True)
class Requirements:
    arches: frozenset[str] | None  # acceptable host arches (amd64, arm64); None: any
    arch_source: str = ""  # where the arch came from: "resources.cpu", "image", "refusal"
    cpu: float = 1.0  # CPUs reserved on the host
    memory_bytes: int = 0  # memory reserved on the host
    excluded_hosts: frozenset[str] = field(default_factory=frozenset)  # host ids that refused this task
    gpu: GpuReq | None = None
    disk_bytes: int | None = None
    nvme: bool = False  # needs a local NVMe device (instance store, Azure local, other)
    fleets: frozenset[str] | None = None
    regions: frozenset[str] | None = None  # compared case-insensitively, as are zones and backends
    zones: frozenset[str] | None = None
    backends: frozenset[str] | None = None
    mounts: tuple[MountReq, ...] = ()
    image_platforms: frozenset[str] | None = None  # e.g. linux/arm64/v8, when the arch came from the image
    # What the task asks of its host, checked against the host's policy: host directories it
    # mounts (`/host/dir:/path`, as written) and a privileged container.
    host_paths: tuple[str, ...] = ()
    privileged: bool = False


@dataclass(frozen=True)
class HostView:
    id: str
    name: str
    arch: str
    live: bool
    cpu_total: float
    memory_total_bytes: int
    cpu_used: float = 0.0
    memory_used_bytes: int = 0
    region: str = ""
    zone: str = ""
    fleet: str = ""  # "": in no fleet
    backend: str = "local"  # aws, azure, gcp for cloud hosts
    gpus: tuple[GpuInfo, ...] = ()
    gpus_used: int = 0
    disk_bytes: int = 0
    local_nvme: bool = False
    # The host's fleet narrows where tasks run: a host outside these gets no task.
    fleet_regions: frozenset[str] | None = None
    fleet_zones: frozenset[str] | None = None
    # The cloud's interruption notice (a spot reclaim, a scheduled reboot), one line: no new task.
    notice: str = ""
    # What the host's operator lets tasks do there (agent.yaml, reported in its facts).
    policy: HostPolicy = DEFAULT_POLICY

    @property
    def cpu_free(self) -> float:
        return self.cpu_total - self.cpu_used

    @property
    def memory_free_bytes(self) -> int:
        return self.memory_total_bytes - self.memory_used_bytes

    @property
    def gpus_free(self) -> int:
        """Unallocated GPUs of any model (the ranking's measure; the gpu rule counts matching ones)."""
        return max(len(self.gpus) - max(self.gpus_used, 0), 0)


@dataclass(frozen=True)
class Rejection:
    host: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Decision:
    chosen: HostView | None
    rejections: tuple[Rejection, ...]
    reason: str  # empty when a host was chosen; otherwise one sentence for `dstackctl ps`
    volumes: tuple[VolumeOption, ...] = ()  # for the chosen host: per mount, the first option that matches it
    gpus: int = 0  # GPUs to allocate on the chosen host
