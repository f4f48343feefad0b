"""Placement rules: each takes the requirements and one host and returns "" when the host passes, or
the reason it is rejected (shown by `dstackctl offers`). Order matters: a host is reported with the
first rule that rejects it. One module per topic; this one only lists them."""

from __future__ import annotations

from collections.abc import Callable

from dstack_hybrid.shared.host_policy import HostPolicy

from controller.placement.model import GpuInfo, HostView, Requirements
from controller.placement.rules.capacity import cpu, cpu_fits, disk, memory, nvme
from controller.placement.rules.gpu import gpu
from controller.placement.rules.host import arch, live, no_notice, not_refused
from controller.placement.rules.location import backend, fleet, fleet_zone, region, zone
from controller.placement.rules.policy import host_policy
from controller.placement.rules.volumes import chosen_volumes, volume_matches, volumes
from controller.placement.text import GIB, arch_text, format_bytes

Rule = Callable[[Requirements, HostView], str]

RULES: tuple[tuple[str, Rule], ...] = (
    ("live", live),
    ("notice", no_notice),
    ("refused", not_refused),
    ("arch", arch),
    ("policy", host_policy),
    ("fleet", fleet),
    ("backend", backend),
    ("region", region),
    ("zone", zone),
    ("fleet-zone", fleet_zone),
    ("volumes", volumes),
    ("cpu", cpu),
    ("memory", memory),
    ("gpu", gpu),
    ("disk", disk),
    ("nvme", nvme),
)

# Rules whose pass/fail reads only the host fields in `static_host_key` and the requirement fields in
# `static_req_key` (never usage): the index checks them once per group of alike hosts, not per host.
# A rule that starts reading another field must join the keys or leave this set.
STATIC_RULES = frozenset(
    {"live", "notice", "arch", "policy", "fleet", "backend", "region", "zone", "fleet-zone", "volumes", "nvme"}
)

StaticHostKey = tuple[
    bool,
    str,
    str,
    str,
    str,
    str,
    str,
    frozenset[str] | None,
    frozenset[str] | None,
    bool,
    tuple[GpuInfo, ...],
    HostPolicy,
]


def static_host_key(host: HostView) -> StaticHostKey:
    # The GPU models ride along: whether a host could ever meet a GPU request depends on them alone.
    return (
        host.live,
        host.notice,
        host.arch,
        host.fleet,
        host.backend,
        host.region,
        host.zone,
        host.fleet_regions,
        host.fleet_zones,
        host.local_nvme,
        host.gpus,
        host.policy,
    )


def static_req_key(req: Requirements) -> tuple[object, ...]:
    return (
        req.arches, req.fleets, req.backends, req.regions, req.zones, req.mounts, req.nvme, req.gpu,
        req.host_paths, req.privileged,
    )  # fmt: skip


__all__ = [
    "GIB",
    "RULES",
    "STATIC_RULES",
    "Rule",
    "arch_text",
    "chosen_volumes",
    "cpu_fits",
    "format_bytes",
    "static_host_key",
    "static_req_key",
    "volume_matches",
]
