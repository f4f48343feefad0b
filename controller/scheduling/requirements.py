"""A task's configuration (plus what the controller knows: fleets, volumes, the image's
platforms, refusals) -> placement Requirements. Also the checks dstack makes at submit:
volumes that exist, are active, are mounted once and can be together; zones that exist."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.configs.fleet import FleetConfiguration
from controller.configs.resources import GPUSpec
from controller.configs.task import TaskConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.placement import HostView, Requirements, first_rejection
from controller.placement.model import GpuReq, MountReq, VolumeOption
from controller.placement.rules.policy import host_policy
from controller.scheduling import taskspec


class SubmitError(ValueError):
    """The task can never run as written: one sentence for the user."""


@dataclass(frozen=True)
class AppliedVolume:
    config: VolumeConfiguration
    status: str  # active | ...


def volume_option(v: VolumeConfiguration) -> VolumeOption:
    return VolumeOption(v.name, v.backend, v.region, v.availability_zone, v.path or "")


def gpu_req(config: TaskConfiguration) -> GpuReq | None:
    return _gpu_req(config.resources.gpu)


def _gpu_req(spec: GPUSpec | None) -> GpuReq | None:
    if spec is None:
        return None
    names = tuple(n.lower() for n in spec.name or ())
    memory = spec.memory
    return GpuReq(
        vendor=spec.vendor,
        names=names,
        memory_min=memory.min if memory else None,
        memory_max=memory.max if memory else None,
        count_min=spec.count.min or 1,
        count_max=spec.count.max,
    )


def mounts(config: TaskConfiguration, volumes: Mapping[str, AppliedVolume]) -> tuple[MountReq, ...]:
    """Named-volume mounts with their candidate volumes; raises SubmitError as dstack would."""
    found: list[MountReq] = []
    seen: dict[str, str] = {}
    for mount in config.volumes:
        if not mount.name:
            continue  # an instance mount: no placement constraint
        options = []
        for name in mount.name:
            applied = volumes.get(name)
            if applied is None:
                raise SubmitError(f"volume {name} does not exist (dstackctl apply -f a volume file first)")
            if applied.status != "active":
                raise SubmitError(f"volume {name} is {applied.status}, not active")
            if name in seen:
                raise SubmitError(f"volume {name} is mounted twice, at {seen[name]} and {mount.path}")
            seen[name] = mount.path
            options.append(volume_option(applied.config))
        found.append(MountReq(mount.path, tuple(options)))
    if len(found) > 1 and not _can_meet(found):
        places = "; ".join(
            f"{m.path}: " + ", ".join(f"{o.name} ({o.zone or o.region})" for o in m.options) for m in found
        )
        raise SubmitError(f"the task's volumes live in different places and no host can mount them all ({places})")
    return tuple(found)


def _can_meet(found: list[MountReq]) -> bool:
    """Some (region, zone) where every mount has a volume: otherwise no host could ever run it."""
    places = {(o.region.lower(), o.zone) for m in found for o in m.options}
    for region, zone in places:
        if all(any(o.region.lower() == region and (o.zone in (None, zone)) for o in m.options) for m in found):
            return True
    return False


def host_paths(config: TaskConfiguration) -> tuple[str, ...]:
    """The host directories the task mounts (`/host/dir:/path`), as written."""
    return tuple(m.instance_path for m in config.volumes if m.instance_path)


def check_host_policy(config: TaskConfiguration, hosts: Iterable[HostView]) -> None:
    """A task no registered host's policy allows is refused now, not left pending for ever: one
    sentence with the first host's reason. With no host registered it waits, as any task would."""
    paths, privileged = host_paths(config), config.privileged
    if not paths and not privileged:
        return
    req = Requirements(arches=None, host_paths=paths, privileged=privileged)
    first, others, seen = "", 0, set()
    for host in hosts:
        if host.policy in seen:  # hosts share a few policies: each is checked once
            others += 1
            continue
        reason = host_policy(req, host)
        if not reason:
            return
        seen.add(host.policy)
        if first:
            others += 1
        else:
            first = reason
    if first:
        more = f" (and {others} other host{'s' if others != 1 else ''})" if others else ""
        raise SubmitError(f"no registered host allows this task: {first}{more}")


def check_zones(config: TaskConfiguration, known: Iterable[str]) -> None:
    """Typo protection: a zone no host, fleet or volume has is refused, with the known ones listed."""
    known_set = set(known)
    for zone in config.availability_zones:
        if zone not in known_set:
            listed = ", ".join(sorted(known_set)) or "none yet"
            raise SubmitError(f"unknown availability zone {zone!r} (known zones: {listed})")


def requirements(
    config: TaskConfiguration,
    arches: frozenset[str] | None,
    arch_source: str,
    excluded_hosts: frozenset[str],
    volumes: Mapping[str, AppliedVolume],
    image_platforms: frozenset[str] | None = None,
) -> Requirements:
    cpu, memory = taskspec.reservation(config)
    disk = config.resources.disk
    return Requirements(
        arches=arches,
        arch_source=arch_source,
        cpu=cpu,
        memory_bytes=memory,
        excluded_hosts=excluded_hosts,
        gpu=gpu_req(config),
        disk_bytes=disk.size.min if disk else None,
        nvme=config.resources.nvme,
        fleets=frozenset(config.fleets) or None,
        regions=frozenset(r.lower() for r in config.regions) or None,
        zones=frozenset(config.availability_zones) or None,
        backends=frozenset(config.backends) or None,
        mounts=mounts(config, volumes),
        image_platforms=image_platforms,
        host_paths=host_paths(config),
        privileged=config.privileged,
    )


def fleet_requirements(fleet: FleetConfiguration) -> Requirements:
    """What every member of `fleet` must have (its `resources`; anything when it has none): what a
    host needs to join it, and what an instance launched for its `nodes` minimum is chosen by."""
    res = fleet.resources
    if res is None:
        return Requirements(arches=None, cpu=0.0)
    disk = res.disk
    return Requirements(
        arches=frozenset({res.cpu.arch}) if res.cpu.arch else None,
        arch_source="resources.cpu" if res.cpu.arch else "",
        cpu=float(res.cpu.count.min or 0),
        memory_bytes=int(res.memory.min or 0),
        gpu=_gpu_req(res.gpu),
        disk_bytes=disk.size.min if disk else None,
        nvme=res.nvme,
    )


def fleet_admission(fleet: FleetConfiguration, host: HostView) -> str:
    """Why a host may not join `fleet` (its `resources` say what a member must have), or ""."""
    if fleet.resources is None:
        return ""
    rejection = first_rejection(fleet_requirements(fleet), host)
    return rejection.reason if rejection else ""
