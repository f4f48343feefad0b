"""Rules about the host itself: is it there, did it refuse this task, can it run the image's arch."""

from __future__ import annotations

from controller.placement.model import HostView, Requirements
from controller.placement.text import arch_text, bracketed


def live(req: Requirements, host: HostView) -> str:
    return "" if host.live else "offline"


def no_notice(req: Requirements, host: HostView) -> str:
    # The cloud takes the host away soon (two minutes for a spot reclaim): a task started there now
    # would only be interrupted.
    return f"host {host.name} has an interruption notice ({host.notice})" if host.notice else ""


def not_refused(req: Requirements, host: HostView) -> str:
    return "refused this task before" if host.id in req.excluded_hosts else ""


def arch(req: Requirements, host: HostView) -> str:
    if req.arches is None or host.arch in req.arches:
        return ""
    if req.image_platforms is not None:
        shown = platform_arches(req.image_platforms)
        # An arch the image has but we do not run (riscv64, say) would read as a contradiction here.
        if host.arch not in shown:
            return f"arch {host.arch} not in image platforms {bracketed(shown)}"
    return f"arch {host.arch}, task needs {arch_text(req.arches)}"


def platform_arches(platforms: frozenset[str]) -> frozenset[str]:
    """linux/arm64/v8 -> arm64: hosts are described by arch, so the image's platforms are shown the same
    way. Other OSes keep their full name (windows/amd64), so they are not mistaken for a runnable arch."""
    shown = set()
    for p in platforms:
        parts = p.split("/")
        shown.add(parts[1] if parts[0] == "linux" and len(parts) > 1 else p)
    return frozenset(shown)
