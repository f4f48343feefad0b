"""Host records and applied fleets -> the facts they hold and the HostViews placement reasons about."""

from __future__ import annotations

from dstack_hybrid.shared import host_policy
from dstack_hybrid.v1 import hybrid_pb2 as pb
from google.protobuf import json_format

from controller.placement import HostView
from controller.placement.model import GpuInfo
from controller.store.records import HostRecord

LOCAL_NVME_KINDS = frozenset({"instance-store", "azure-local", "other"})


def host_facts(host: HostRecord) -> pb.HostFacts:
    """The facts the host registered with (stored as JSON; fields a newer agent sent are skipped)."""
    return json_format.Parse(host.facts_json, pb.HostFacts(), ignore_unknown_fields=True)


def host_view(
    host: HostRecord,
    facts: pb.HostFacts,
    live: bool,
    fleet_regions: frozenset[str] | None = None,
    fleet_zones: frozenset[str] | None = None,
    notice: str = "",
) -> HostView:
    """A host with nothing reserved yet; the index adds what its tasks hold."""
    return HostView(
        id=host.id,
        name=host.name,
        arch=host.arch,
        live=live,
        cpu_total=float(facts.cpu.threads or 0),
        memory_total_bytes=facts.memory_bytes,
        region=host.region,
        zone=host.zone,
        fleet=host.fleet,
        backend=facts.cloud.provider or "local",
        gpus=tuple(GpuInfo(g.vendor, g.name, g.memory_bytes) for g in facts.gpus),
        # The disk tasks write to: the largest of / and the Docker data root.
        disk_bytes=max((d.size_bytes for d in facts.disks), default=0),
        local_nvme=any(n.kind in LOCAL_NVME_KINDS for n in facts.nvme),
        fleet_regions=fleet_regions,
        fleet_zones=fleet_zones,
        notice=notice,
        policy=host_policy.from_proto(facts.policy),
    )
