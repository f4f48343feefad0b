"""One sentence for a task that fits nowhere, for `dstackctl ps`: the most specific that is true,
e.g. `no live host with arch arm64: 1 host is amd64`, else a count of the rules that rejected hosts."""

from __future__ import annotations

from collections import Counter

from controller.placement.model import HostView, Rejection, Requirements
from controller.placement.rules.volumes import unavailable_text, volume_matches
from controller.placement.text import arch_text, count


def summarise(req: Requirements, hosts: list[HostView], rejections: list[Rejection]) -> str:
    if not hosts:
        return "no hosts are registered"
    live = [h for h in hosts if h.live]
    if not live:
        return f"no live host: {count(len(hosts), 'host')} offline"
    candidates = [h for h in live if h.id not in req.excluded_hosts]
    if req.arches is not None and not any(h.arch in req.arches for h in candidates):
        by_arch = Counter(h.arch for h in candidates)
        parts = [f"{count(n, 'host')} {'is' if n == 1 else 'are'} {a}" for a, n in sorted(by_arch.items())]
        refused = len(live) - len(candidates)
        if refused:
            parts.append(f"{count(refused, 'host')} refused it")
        return f"no live host with arch {arch_text(req.arches)}: " + ", ".join(parts)
    volumes = _volumes_sentence(req, live, rejections)
    if volumes:
        return volumes
    by_rule = Counter(r.rule for r in rejections)
    details = "; ".join(f"{r.host}: {r.reason}" for r in rejections[:3])
    more = f" (and {len(rejections) - 3} more)" if len(rejections) > 3 else ""
    return f"no live host fits ({', '.join(f'{n} {rule}' for rule, n in by_rule.items())}): {details}{more}"


def _volumes_sentence(req: Requirements, live: list[HostView], rejections: list[Rejection]) -> str:
    """When volumes alone kept every live host out, where the volumes are says more than a rule count:
    the first mount that no live host can mount is named."""
    live_rules = [r.rule for r in rejections if r.rule != "live"]
    if not live_rules or any(rule != "volumes" for rule in live_rules):
        return ""
    for mount in req.mounts:
        if not any(volume_matches(o, h) for h in live for o in mount.options):
            return unavailable_text(mount)
    return ""
