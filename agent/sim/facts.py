"""Per-host facts for `dstack-agent simulate`, derived from one template in the shape of
`dstack-agent facts --json` (INTERFACES.md): host i differs in its name, and in zone and arch
when the operator asks for a spread."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb

ARCH_RAW = {"amd64": "x86_64", "arm64": "aarch64"}
# eu-west-1a -> eu-west-1 (AWS); us-central1-a -> us-central1 (GCP). Azure zones are bare digits
# and say nothing about the region, so they keep the template's.
_AWS_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+[a-z]$")
_GCP_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")


def region_for_zone(zone: str) -> str | None:
    if _AWS_ZONE.match(zone):
        return zone[:-1]
    if _GCP_ZONE.match(zone):
        return zone[:-2]
    return None


def host_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}"


def _s(value: Any) -> str:
    # null means unknown, which the proto spells as the empty string.
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _i(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r}")
    return value


def template_from_json(data: Any, where: str) -> pb.HostFacts:
    """The template as a HostFacts message; ValueError naming `where` when it is not facts JSON.

    Keys may be missing (a hand-written file, or a fixture's expected.json): the controller
    reads a missing fact as unknown, exactly as for a real host that could not detect it."""
    try:
        root = _dict(data)
        cpu = _dict(root.get("cpu"))
        cloud = _dict(root.get("cloud"))
        facts = pb.HostFacts(
            arch=_s(root.get("arch")),
            arch_raw=_s(root.get("arch_raw")),
            cpu=pb.CpuInfo(
                vendor=_s(cpu.get("vendor")),
                model=_s(cpu.get("model")),
                cores=_i(cpu.get("cores")),
                threads=_i(cpu.get("threads")),
                flags=[_s(f) for f in _list(cpu.get("flags"))],
            ),
            memory_bytes=_i(root.get("memory_bytes")),
            disks=[
                pb.Disk(path=_s(d.get("path")), size_bytes=_i(d.get("size_bytes")))
                for d in map(_dict, _list(root.get("disks")))
            ],
            nvme=[
                pb.NvmeDevice(
                    name=_s(n.get("name")),
                    model=_s(n.get("model")),
                    serial=_s(n.get("serial")),
                    transport=_s(n.get("transport")),
                    size_bytes=_i(n.get("size_bytes")),
                    kind=_s(n.get("kind")),
                )
                for n in map(_dict, _list(root.get("nvme")))
            ],
            gpus=[
                pb.Gpu(vendor=_s(g.get("vendor")), name=_s(g.get("name")), memory_bytes=_i(g.get("memory_bytes")))
                for g in map(_dict, _list(root.get("gpus")))
            ],
            emulators=[_s(e) for e in _list(root.get("emulators"))],
            region=_s(root.get("region")),
            zone=_s(root.get("zone")),
            labels={_s(k): str(v) for k, v in _dict(root.get("labels")).items()},
            fleet=_s(root.get("fleet")),
            overridden=[_s(o) for o in _list(root.get("overridden"))],
            warnings=[_s(w) for w in _list(root.get("warnings"))],
        )
        if cloud.get("provider"):
            facts.cloud.CopyFrom(
                pb.CloudIdentity(
                    provider=_s(cloud.get("provider")),
                    region=_s(cloud.get("region")),
                    zone=_s(cloud.get("zone")),
                    zone_id=_s(cloud.get("zone_id")),
                    instance_type=_s(cloud.get("instance_type")),
                    instance_id=_s(cloud.get("instance_id")),
                    spot=bool(cloud.get("spot")),
                    hyperv_generation=_s(cloud.get("hyperv_generation")),
                )
            )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where} is not in the shape of `dstack-agent facts --json`: {exc}") from None
    return facts


def _instance_id(template_id: str, name: str) -> str:
    """A per-host instance id shaped like the template's: hosts sharing one would look like one
    machine registered many times to anyone reading `hosts -v` or matching cloud inventories."""
    digest = hashlib.sha256(f"{template_id}/{name}".encode()).hexdigest()
    if template_id.startswith("i-"):  # AWS
        return "i-" + digest[: max(len(template_id) - 2, 8)]
    if template_id.isdigit():  # GCP
        return str(int(digest[:15], 16))
    try:
        uuid.UUID(template_id)  # Azure vmId
    except ValueError:
        return f"{template_id}-{name}"
    return str(uuid.UUID(digest[:32]))


def host_facts(
    template: pb.HostFacts,
    index: int,
    name: str,
    zones: Sequence[str],
    arches: Sequence[str],
    region: str | None,
    agent_version: str,
) -> pb.HostFacts:
    facts = pb.HostFacts()
    facts.CopyFrom(template)
    facts.hostname = name
    facts.agent_version = agent_version
    cloud = facts.cloud if facts.HasField("cloud") else None
    if cloud is not None and cloud.instance_id:
        cloud.instance_id = _instance_id(cloud.instance_id, name)
    if arches:
        facts.arch = arches[index % len(arches)]
        facts.arch_raw = ARCH_RAW[facts.arch]
        # A host never lists its own arch as one it could emulate.
        kept = [e for e in facts.emulators if e != facts.arch]
        del facts.emulators[:]
        facts.emulators.extend(kept)
    marks: list[str] = []
    if zones:
        zone = zones[index % len(zones)]
        facts.zone = zone
        facts.region = region or region_for_zone(zone) or facts.region
        marks += ["zone", "region"] if region or region_for_zone(zone) else ["zone"]
    elif region:
        facts.region = region
        marks.append("region")
    if not marks:
        return facts
    if cloud is not None:
        # A cloud host learns its zone from the metadata service: keep the identity consistent
        # with the effective placement (the zone id names one zone, so it cannot carry over).
        if cloud.zone != facts.zone:
            cloud.zone_id = ""
        cloud.zone, cloud.region = facts.zone, facts.region
    else:
        # Off the cloud only agent.yaml can place a host, and `hosts` marks such values.
        facts.overridden.extend(m for m in marks if m not in facts.overridden)
    return facts
