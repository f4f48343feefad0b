"""HostIndex: the scheduler's view of every host, kept so one decision does not check every host.

`place(req, hosts)` checks all hosts (it has to, to explain each one). The index chooses the same host
without that: hosts are grouped by everything the static rules read (liveness, arch, fleet, backend,
region, zone, NVMe, GPU models), so those rules run once per group, and within a group hosts are kept
sorted by free CPU. Bin-packing prefers the least free CPU left over, so a scan that starts at the first
host with enough CPU can stop once it has found a host passing every rule and moved past the hosts
that would be left with the same free CPU (they tie, and memory, GPUs and name decide among them).
When no host fits, the full `place` runs to say why: that is the rare, slow path.

Still pure: no I/O, no clock; the caller upserts views as facts and usage change."""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

from controller.placement.core import decide, place
from controller.placement.model import Decision, HostView, Requirements
from controller.placement.rank import RankKey, rank_key
from controller.placement.rules import RULES, STATIC_RULES, StaticHostKey, cpu_fits, static_host_key, static_req_key
from controller.placement.rules.gpu import could_fit

_STATIC = tuple(rule for name, rule in RULES if name in STATIC_RULES)
_PER_HOST = tuple(rule for name, rule in RULES if name not in STATIC_RULES)

# Distinct requirement shapes remembered; a scheduler sees few (tasks are made from a few configs).
_CACHE_LIMIT = 4096


class _Group:
    """Hosts alike in every static field, sorted by (free CPU, id)."""

    def __init__(self, sample: HostView) -> None:
        # Any host that was ever in the group: the static rules read only the fields all members share,
        # so it stands for the group even once it has left.
        self.sample = sample
        self.entries: list[tuple[float, str]] = []


class HostIndex:
    def __init__(self, hosts: Iterable[HostView] = ()) -> None:
        self._hosts: dict[str, HostView] = {}
        self._groups: dict[StaticHostKey, _Group] = {}
        # static requirement key -> the groups whose static rules pass; cleared when a group appears.
        self._candidates: dict[tuple[object, ...], list[_Group]] = {}
        for host in hosts:
            self.upsert(host)

    # ------------------------------------------------------------------ contents

    def __len__(self) -> int:
        return len(self._hosts)

    def __contains__(self, host_id: object) -> bool:
        return host_id in self._hosts

    def __iter__(self) -> Iterator[HostView]:
        return iter(list(self._hosts.values()))

    def hosts(self) -> list[HostView]:
        """Every host, in the order first added (a replaced host keeps its place)."""
        return list(self._hosts.values())

    def get(self, host_id: str) -> HostView | None:
        return self._hosts.get(host_id)

    def upsert(self, host: HostView) -> None:
        old = self._hosts.get(host.id)
        if old is not None:
            self._unfile(old)
        self._hosts[host.id] = host
        key = static_host_key(host)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(host)
            self._candidates.clear()  # a new group may pass requirements already cached
        insort(group.entries, (host.cpu_free, host.id))

    def remove(self, host_id: str) -> HostView | None:
        old = self._hosts.pop(host_id, None)
        if old is not None:
            self._unfile(old)
        return old

    def reserve(self, host_id: str, cpu: float, memory: int, gpus: int = 0) -> HostView:
        """Count a placed task's share as used; returns the updated view. KeyError for an unknown host."""
        return self._adjust(host_id, cpu, memory, gpus)

    def release(self, host_id: str, cpu: float, memory: int, gpus: int = 0) -> HostView:
        """Give a finished task's share back (never below zero); returns the updated view."""
        return self._adjust(host_id, -cpu, -memory, -gpus)

    def _adjust(self, host_id: str, cpu: float, memory: int, gpus: int) -> HostView:
        h = self._hosts[host_id]
        # Clamped at zero: a release after the host was re-registered (usage reset) must not leave
        # negative usage, which would read as more room than the host has.
        updated = dataclasses.replace(
            h,
            cpu_used=max(h.cpu_used + cpu, 0.0),
            memory_used_bytes=max(h.memory_used_bytes + memory, 0),
            gpus_used=max(h.gpus_used + gpus, 0),
        )
        self.upsert(updated)
        return updated

    def _unfile(self, host: HostView) -> None:
        # Groups are never dropped, even empty: their number is bounded by the distinct places and
        # models hosts have, and keeping them keeps the requirement cache valid.
        entries = self._groups[static_host_key(host)].entries
        entry = (host.cpu_free, host.id)
        i = bisect_left(entries, entry)
        if i < len(entries) and entries[i] == entry:
            del entries[i]

    # ------------------------------------------------------------------ placement

    def place(self, req: Requirements) -> Decision:
        """The host, volumes and GPUs `place(req, self.hosts())` would choose. When a host is chosen the
        decision lists no rejections (the others were never all looked at: use `place` to explain);
        when none fits it is exactly `place`'s decision, reasons and all."""
        best: tuple[RankKey, HostView] | None = None
        for group in self._groups_for(req):
            found = self._best_in(group, req, best[0][0] if best else None)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None:
            return place(req, self.hosts())
        return decide(req, best[1])

    def _groups_for(self, req: Requirements) -> list[_Group]:
        key = static_req_key(req)
        groups = self._candidates.get(key)
        if groups is None:
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            groups = [
                g
                for g in self._groups.values()
                if could_fit(req, g.sample.gpus) and not any(rule(req, g.sample) for rule in _STATIC)
            ]
            self._candidates[key] = groups
        return groups

    def _best_in(self, group: _Group, req: Requirements, bound: float | None) -> tuple[RankKey, HostView] | None:
        """The best-ranked host of the group passing every rule, ignoring hosts that would be left with
        more free CPU than `bound` (another group already has a better one)."""
        entries = group.entries
        n = len(entries)
        # The first host with enough CPU, by the cpu rule's own test (it tolerates rounding, so the
        # bisect lands near and the two loops settle the exact edge).
        i = bisect_left(entries, (req.cpu,))
        while i > 0 and cpu_fits(req.cpu, entries[i - 1][0]):
            i -= 1
        while i < n and not cpu_fits(req.cpu, entries[i][0]):
            i += 1
        best: tuple[RankKey, HostView] | None = None
        hosts = self._hosts
        for j in range(i, n):
            free, host_id = entries[j]
            left = free - req.cpu
            # Sorted by free CPU, so the CPU left over only grows from here: once past the best seen
            # (here or in another group), nothing further can win. Equal leftovers tie and are compared.
            if bound is not None and left > bound:
                break
            host = hosts[host_id]
            if req.memory_bytes > host.memory_free_bytes:
                continue  # the memory rule's own test, inlined: the commonest miss, skipped cheaply
            if any(rule(req, host) for rule in _PER_HOST):
                continue
            key = rank_key(req, host)
            if best is None or key < best[0]:
                best = (key, host)
                bound = key[0]
        return best
