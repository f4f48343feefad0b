"""Placement rules: each takes the requirements and one host and returns "" when the host
passes, or the reason it is rejected (shown by `dstackctl offers`). Order matters: a host is
reported with the first rule that rejects it."""

from __future__ import annotations

from collections.abc import Callable

from controller.placement.model import HostView, Requirements

Rule = Callable[[Requirements, HostView], str]

GIB = 1024**3


def live(req: Requirements, host: HostView) -> str:
    return "" if host.live else "offline"


def not_refused(req: Requirements, host: HostView) -> str:
    return "refused this task's image before" if host.id in req.excluded_hosts else ""


def arch(req: Requirements, host: HostView) -> str:
    if req.arches is None or host.arch in req.arches:
        return ""
    return f"arch {host.arch}, task needs {arch_text(req.arches)}"


def cpu(req: Requirements, host: HostView) -> str:
    if req.cpu <= host.cpu_free + 1e-9:
        return ""
    noun = "CPU" if req.cpu == 1 else "CPUs"
    return f"needs {_num(req.cpu)} {noun}, {_num(max(host.cpu_free, 0.0))} of {_num(host.cpu_total)} free"


def memory(req: Requirements, host: HostView) -> str:
    if req.memory_bytes <= host.memory_free_bytes:
        return ""
    return (
        f"needs {format_bytes(req.memory_bytes)} memory, "
        f"{format_bytes(max(host.memory_free_bytes, 0))} of {format_bytes(host.memory_total_bytes)} free"
    )


RULES: tuple[tuple[str, Rule], ...] = (
    ("live", live),
    ("refused", not_refused),
    ("arch", arch),
    ("cpu", cpu),
    ("memory", memory),
)


def arch_text(arches: frozenset[str]) -> str:
    return " or ".join(sorted(arches)) if arches else "an arch no host has"


def format_bytes(n: int) -> str:
    for unit, size in (("TB", 1024**4), ("GB", GIB), ("MB", 1024**2)):
        if n >= size:
            return f"{_num(n / size)}{unit}"
    return f"{n}B"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
