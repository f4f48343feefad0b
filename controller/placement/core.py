"""The placement decision: requirements x host views -> chosen host, or why none fits.
No I/O, no clock: the caller passes everything in, so it is cheap to test and to explain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from controller.placement.model import Decision, HostView, Rejection, Requirements
from controller.placement.rules import RULES, arch_text


def place(req: Requirements, hosts: Iterable[HostView]) -> Decision:
    fitting: list[HostView] = []
    rejections: list[Rejection] = []
    seen: list[HostView] = []
    for host in hosts:
        seen.append(host)
        rejection = first_rejection(req, host)
        if rejection is None:
            fitting.append(host)
        else:
            rejections.append(rejection)
    if not fitting:
        return Decision(None, tuple(rejections), summarise(req, seen, rejections))
    # Bin-pack: the host left with the least free capacity, so big hosts stay free for big tasks;
    # ties broken by name so the same inputs always give the same answer.
    chosen = min(fitting, key=lambda h: (h.cpu_free - req.cpu, h.memory_free_bytes - req.memory_bytes, h.name))
    return Decision(chosen, tuple(rejections), "")


def first_rejection(req: Requirements, host: HostView) -> Rejection | None:
    for rule_name, rule in RULES:
        reason = rule(req, host)
        if reason:
            return Rejection(host.name, rule_name, reason)
    return None


def summarise(req: Requirements, hosts: list[HostView], rejections: list[Rejection]) -> str:
    """One sentence for a task that fits nowhere, e.g. `no live host with arch arm64: 1 host is amd64`."""
    if not hosts:
        return "no hosts are registered"
    live = [h for h in hosts if h.live]
    if not live:
        return f"no live host: {_count(len(hosts), 'host')} offline"
    candidates = [h for h in live if h.id not in req.excluded_hosts]
    if req.arches is not None and not any(h.arch in req.arches for h in candidates):
        by_arch = Counter(h.arch for h in candidates)
        parts = [f"{_count(n, 'host')} {'is' if n == 1 else 'are'} {a}" for a, n in sorted(by_arch.items())]
        refused = len(live) - len(candidates)
        if refused:
            parts.append(f"{_count(refused, 'host')} refused it")
        return f"no live host with arch {arch_text(req.arches)}: " + ", ".join(parts)
    by_rule = Counter(r.rule for r in rejections)
    details = "; ".join(f"{r.host}: {r.reason}" for r in rejections[:3])
    more = f" (and {len(rejections) - 3} more)" if len(rejections) > 3 else ""
    return f"no live host fits ({', '.join(f'{n} {rule}' for rule, n in by_rule.items())}): {details}{more}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
