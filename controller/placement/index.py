"""HostIndex: the scheduler's view of every host, kept so one decision does not check every host.

`place(req, hosts)` checks all hosts (it has to, to explain each one). The index chooses the same host
without that. Hosts are grouped by everything the static rules read (liveness, arch, fleet, backend,
region, zone, NVMe, GPU models), so those rules run once per group and whole groups are skipped; a
group's hosts are kept sorted in pack order (free CPU, then memory, GPUs, name, id), the order the
bin-packing ranking compares. A scan bisects to the first host with enough CPU and, within each run of
equal free CPU, to the first with enough memory; the first host there passing the remaining rules is
the best of its run, and runs with more CPU left over than the best so far are never looked at.
When no host fits, the full `place` runs to say why: that is the rare, slow path.

Still pure: no I/O, no clock; the caller upserts views as facts and usage change."""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import cast

from controller.placement.core import decide, place
from controller.placement.model import Decision, HostView, Requirements
from controller.placement.rank import PackOrder, RankKey, after, pack_order
from controller.placement.rules import RULES, STATIC_RULES, StaticHostKey, cpu_fits, static_host_key, static_req_key
from controller.placement.rules.gpu import could_fit, to_allocate

_STATIC = tuple(rule for name, rule in RULES if name in STATIC_RULES)
_PER_HOST = tuple(rule for name, rule in RULES if name not in STATIC_RULES)

# Distinct requirement shapes remembered; a scheduler sees few (tasks are made from a few configs).
_CACHE_LIMIT = 4096


class _Group:
    """Hosts alike in every static field, sorted in pack order."""

    def __init__(self, sample: HostView) -> None:
        # Any host that was ever in the group: the static rules read only the fields all members share,
        # so it stands for the group even once it has left.
        self.sample = sample
        self.entries: list[PackOrder] = []


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
        insort(group.entries, pack_order(host))

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
        entry = pack_order(host)
        i = bisect_left(entries, entry)
        if i < len(entries) and entries[i] == entry:
            del entries[i]

    # ------------------------------------------------------------------ placement

    def place(self, req: Requirements) -> Decision:
        """The host, volumes and GPUs `place(req, self.hosts())` would choose. When a host is chosen the
        decision lists no rejections (the others were never all looked at: use `place` to explain);
        when none fits it is exactly `place`'s decision, reasons and all."""
        best: _Best | None = None
        for group in self._groups_for(req):
            best = self._best_in(group, req, best)
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

    def _best_in(self, group: _Group, req: Requirements, best: _Best | None) -> _Best | None:
        """`best`, or a better host from this group. Entries are in pack order: a run of equal free CPU
        is sorted by what is left after it, so the run's first host passing every rule is its best, and
        a run whose candidate ranks below `best` can be left at once."""
        entries = group.entries
        n = len(entries)
        gpus = to_allocate(req)
        i = _first_fitting(entries, req.cpu)
        while i < n:
            free = entries[i][0]
            # The CPU left over only grows from run to run: once past the best, nothing here can win.
            # (Runs whose leftovers round to the same float tie, and are compared on.)
            if best is not None and free - req.cpu > best[0][0]:
                break
            end = bisect_left(entries, _probe(free, math.inf), lo=i)
            # Hosts with too little memory sort first in the run; the memory rule's own test skips them.
            j = bisect_left(entries, _probe(free, req.memory_bytes), lo=i, hi=end)
            while j < end:
                rank = after(req, entries[j], gpus)
                if best is not None and rank >= best[0]:
                    break  # the rest of the run ranks lower still
                host = self._hosts[entries[j][4]]
                if not any(rule(req, host) for rule in _PER_HOST):
                    best = (rank, host)
                    break
                j += 1
            i = end
        return best


_Best = tuple[RankKey, HostView]


def _probe(*prefix: float) -> PackOrder:
    """A key for bisect: a tuple prefix sorts before every entry that starts with it (and math.inf
    after every entry with that free CPU). Not a real entry, hence the cast."""
    return cast(PackOrder, prefix)


def _first_fitting(entries: list[PackOrder], need: float) -> int:
    """Index of the first host with enough CPU by the cpu rule's own test, which tolerates rounding:
    the bisect lands next to it and whole runs of equal free CPU are stepped over to settle the edge."""
    i = bisect_left(entries, _probe(need))
    while i > 0 and cpu_fits(need, entries[i - 1][0]):
        i = bisect_left(entries, _probe(entries[i - 1][0]), hi=i - 1)
    n = len(entries)
    while i < n and not cpu_fits(need, entries[i][0]):
        i = bisect_left(entries, _probe(entries[i][0], math.inf), lo=i)
    return i
