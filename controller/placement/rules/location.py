"""Rules about where a host is: its fleet, backend, region and zone, against the task's lists and
against its own fleet's (a fleet's `availability_zones` narrow where its hosts take tasks)."""

from __future__ import annotations

from controller.placement.model import HostView, Requirements
from controller.placement.text import bracketed


def fleet(req: Requirements, host: HostView) -> str:
    if req.fleets is None or host.fleet in req.fleets:
        return ""
    if not host.fleet:
        return f"not in any fleet, task needs {bracketed(req.fleets)}"
    return f"fleet {host.fleet} not in {bracketed(req.fleets)}"


def backend(req: Requirements, host: HostView) -> str:
    if req.backends is None or among(host.backend, req.backends):
        return ""
    return f"backend {host.backend} not in {bracketed(req.backends)}"


def region(req: Requirements, host: HostView) -> str:
    if req.regions is None or among(host.region, req.regions):
        return ""
    if not host.region:
        return f"no region, task needs {bracketed(req.regions)}"
    return f"region {host.region} not in {bracketed(req.regions)}"


def zone(req: Requirements, host: HostView) -> str:
    if req.zones is None or among(host.zone, req.zones):
        return ""
    if not host.zone:
        return f"no zone, task needs {bracketed(req.zones)}"
    return f"zone {host.zone} not in {bracketed(req.zones)}"


def fleet_zone(req: Requirements, host: HostView) -> str:
    owner = f"fleet {host.fleet}" if host.fleet else "its fleet"
    if host.fleet_regions is not None and not among(host.region, host.fleet_regions):
        if not host.region:
            return f"no region, {owner}'s regions are {bracketed(host.fleet_regions)}"
        return f"region {host.region} not in {owner}'s regions {bracketed(host.fleet_regions)}"
    if host.fleet_zones is not None and not among(host.zone, host.fleet_zones):
        if not host.zone:
            return f"no zone, {owner}'s zones are {bracketed(host.fleet_zones)}"
        return f"zone {host.zone} not in {owner}'s zones {bracketed(host.fleet_zones)}"
    return ""


def among(value: str, allowed: frozenset[str]) -> bool:
    """Case-insensitive: clouds spell regions and zones in lower case, people do not always.
    An empty value (a host that does not know its zone) is in no list."""
    if not value:
        return False
    lowered = value.lower()
    return any(lowered == a.lower() for a in allowed)
