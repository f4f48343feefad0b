"""All facts of a host, in the shape of `dstack-agent facts --json` (INTERFACES.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.facts.cpu import CpuFacts
from agent.facts.disks import DiskFacts


@dataclass
class HostFacts:
    arch: str
    arch_raw: str
    cpu: CpuFacts
    memory_bytes: int | None
    disks: list[DiskFacts]
    emulators: list[str]
    hostname: str
    # Filled by the Host facts work (NVMe, GPUs, cloud identity); empty until then.
    nvme: list[dict[str, Any]] = field(default_factory=list)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    cloud: dict[str, Any] | None = None
    region: str | None = None
    zone: str | None = None
    fleet: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        cloud = self.cloud or {
            "provider": None,
            "region": None,
            "zone": None,
            "zone_id": None,
            "instance_type": None,
            "instance_id": None,
            "spot": None,
            "hyperv_generation": None,
        }
        return {
            "arch": self.arch,
            "arch_raw": self.arch_raw,
            "cpu": {k: v for k, v in dataclasses.asdict(self.cpu).items() if k != "flags"},
            "memory_bytes": self.memory_bytes,
            "disks": [dataclasses.asdict(d) for d in self.disks],
            "nvme": self.nvme,
            "gpus": self.gpus,
            "emulators": self.emulators,
            "cloud": cloud,
            "region": self.region,
            "zone": self.zone,
            "labels": self.labels,
            "hostname": self.hostname,
        }

    def to_proto(self, agent_version: str) -> pb.HostFacts:
        return pb.HostFacts(
            arch=self.arch,
            arch_raw=self.arch_raw,
            cpu=pb.CpuInfo(
                vendor=self.cpu.vendor or "",
                model=self.cpu.model or "",
                cores=self.cpu.cores or 0,
                threads=self.cpu.threads or 0,
                flags=self.cpu.flags,
            ),
            memory_bytes=self.memory_bytes or 0,
            disks=[pb.Disk(path=d.path, size_bytes=d.size_bytes) for d in self.disks],
            emulators=self.emulators,
            region=self.region or "",
            zone=self.zone or "",
            labels=self.labels,
            hostname=self.hostname,
            agent_version=agent_version,
            fleet=self.fleet or "",
        )
