"""What placement reasons about: a task's requirements and a view of each host. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Requirements:
    arches: frozenset[str] | None  # acceptable host arches (amd64, arm64); None: any
    arch_source: str = ""  # where the arch came from: "resources.cpu", "image", "refusal"
    cpu: float = 1.0  # CPUs reserved on the host
    memory_bytes: int = 0  # memory reserved on the host
    excluded_hosts: frozenset[str] = field(default_factory=frozenset)  # host ids that refused this task


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

    @property
    def cpu_free(self) -> float:
        return self.cpu_total - self.cpu_used

    @property
    def memory_free_bytes(self) -> int:
        return self.memory_total_bytes - self.memory_used_bytes


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
