"""All facts of a host, in the shape of `dstack-agent facts --json` (INTERFACES.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstack_hybrid.v1 import hybrid_pb2 as pb

from dstack_hybrid.shared.host_policy import HostPolicy, to_proto

from agent.facts.cloud.model import CloudFacts
from agent.facts.cpu import CpuFacts
from agent.facts.disks import DiskFacts
from agent.facts.gpu import GpuFacts
from agent.facts.nvme import NvmeFacts

NO_CLOUD: dict[str, Any] = {
    "provider": None, "region": None, "zone": None, "zone_id": None, "instance_type": None,
    "instance_id": None, "spot": None, "hyperv_generation": None,
}  # fmt: skip


@dataclass
class HostFacts:
    arch: str
    arch_raw: str
    cpu: CpuFacts
    memory_bytes: int | None
    disks: list[DiskFacts]
    emulators: list[str]
    hostname: str
    nvme: list[NvmeFacts] = field(default_factory=list)
    gpus: list[GpuFacts] = field(default_factory=list)
    cloud: CloudFacts | None = None
    # Effective placement: an operator's agent.yaml wins over cloud metadata (see `overridden`).
    region: str | None = None
    zone: str | None = None
    fleet: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    overridden: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    policy: HostPolicy | None = None  # what tasks may ask of this host (agent.yaml; agent/policy.py)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_raw": self.arch_raw,
            "cpu": {k: v for k, v in dataclasses.asdict(self.cpu).items() if k != "flags"},
            "memory_bytes": self.memory_bytes,
            "disks": [dataclasses.asdict(d) for d in self.disks],
            "nvme": [n.to_dict() for n in self.nvme],
            "gpus": [g.to_dict() for g in self.gpus],
            "emulators": self.emulators,
            "cloud": self.cloud.to_dict() if self.cloud else dict(NO_CLOUD),
            "region": self.region,
            "zone": self.zone,
            "labels": self.labels,
            "fleet": self.fleet,
            "hostname": self.hostname,
            "overridden": self.overridden,
            "warnings": self.warnings,
            "policy": _policy_json(self.policy),
        }

    def to_proto(self, agent_version: str) -> pb.HostFacts:
        from dstack_hybrid.v1 import hybrid_pb2 as pb  # protobuf is not needed to print facts

        cloud = self.cloud
        return pb.HostFacts(
            arch=self.arch,
            arch_raw=self.arch_raw,
            cpu=pb.CpuInfo(
                vendor=self.cpu.vendor or "", model=self.cpu.model or "", cores=self.cpu.cores or 0,
                threads=self.cpu.threads or 0, flags=self.cpu.flags,
            ),
            memory_bytes=self.memory_bytes or 0,
            disks=[pb.Disk(path=d.path, size_bytes=d.size_bytes) for d in self.disks],
            nvme=[
                pb.NvmeDevice(name=n.name, model=n.model, serial=n.serial, transport=n.transport,
                              size_bytes=n.size_bytes, kind=n.kind)
                for n in self.nvme
            ],
            gpus=[pb.Gpu(vendor=g.vendor, name=g.name, memory_bytes=g.memory_bytes) for g in self.gpus],
            emulators=self.emulators,
            cloud=pb.CloudIdentity(
                provider=cloud.provider, region=cloud.region or "", zone=cloud.zone or "",
                zone_id=cloud.zone_id or "", instance_type=cloud.instance_type or "",
                instance_id=cloud.instance_id or "", spot=bool(cloud.spot),
                hyperv_generation=cloud.hyperv_generation or "",
            ) if cloud else None,
            region=self.region or "",
            zone=self.zone or "",
            labels=self.labels,
            hostname=self.hostname,
            agent_version=agent_version,
            fleet=self.fleet or "",
            overridden=self.overridden,
            warnings=self.warnings,
            policy=to_proto(self.policy) if self.policy is not None else None,
        )  # fmt: skip


def _policy_json(policy: HostPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "host_paths": policy.host_paths,
        "allow": list(policy.allow),
        "never": list(policy.never),
        "allow_privileged": policy.allow_privileged,
    }
