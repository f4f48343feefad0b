"""Volumes: a mount lists candidate volumes in preference order; a host qualifies when every mount has
one available there, and the first such volume per mount is the one used."""

from __future__ import annotations

from controller.placement.model import HostView, MountReq, Requirements, VolumeOption
from controller.placement.text import names_text


def volume_matches(option: VolumeOption, host: HostView) -> bool:
    """A `local` volume (a directory on on-prem hosts) follows region/zone only; a cloud volume also
    needs a host of its own cloud, since only that cloud can attach it."""
    if option.region.lower() != host.region.lower():
        return False
    if option.zone is not None and option.zone.lower() != host.zone.lower():
        return False
    return option.backend.lower() == "local" or option.backend.lower() == host.backend.lower()


def chosen_volumes(req: Requirements, host: HostView) -> tuple[VolumeOption, ...] | None:
    """Per mount, the first option available on the host; None when some mount has none."""
    chosen = []
    for mount in req.mounts:
        option = next((o for o in mount.options if volume_matches(o, host)), None)
        if option is None:
            return None
        chosen.append(option)
    return tuple(chosen)


def unmet_mount(req: Requirements, host: HostView) -> MountReq | None:
    return next((m for m in req.mounts if not any(volume_matches(o, host) for o in m.options)), None)


def volumes(req: Requirements, host: HostView) -> str:
    mount = unmet_mount(req, host)
    if mount is None:
        return ""
    if not mount.options:
        return f"no volume listed for {mount.path}"
    names = [o.name for o in mount.options]
    where = host.region or "an unknown region"
    if host.zone:
        where += f" ({host.zone})"
    if any(o.backend.lower() != "local" for o in mount.options):
        # A cloud volume in the right zone still does not fit a host of another backend: say which.
        where = f"{host.backend} {where}"
    if len(names) == 1:
        return f"{names[0]} is not in {where}"
    return f"none of {', '.join(names)} is in {where}"


def unavailable_text(mount: MountReq) -> str:
    """For the summary: where the mount's volumes are, `no host where vol-eu is available (vol-eu: eu-west-1a)`."""
    if not mount.options:
        return f"no volume listed for {mount.path}"
    places = ", ".join(f"{o.name}: {o.zone or o.region}" for o in mount.options)
    return f"no host where {names_text(o.name for o in mount.options)} is available ({places})"
