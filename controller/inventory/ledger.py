"""The one account of what placed tasks hold on their hosts (cpu, memory, GPUs).

Tasks are keyed by id, so reserving twice (a restart re-reading the store, a re-placement) counts
once, and releasing gives back exactly what was taken. Per-host totals are kept as tasks come and
go, never below zero. Pure: the inventory mirrors the totals into the placement index."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    cpu: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0

    def __add__(self, other: Share) -> Share:
        return Share(self.cpu + other.cpu, self.memory_bytes + other.memory_bytes, self.gpus + other.gpus)

    def __sub__(self, other: Share) -> Share:
        return Share(
            max(self.cpu - other.cpu, 0.0),
            max(self.memory_bytes - other.memory_bytes, 0),
            max(self.gpus - other.gpus, 0),
        )


NOTHING = Share()


class UsageLedger:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, Share]] = {}  # task id -> (host id, its share)
        self._totals: dict[str, Share] = {}  # host id -> what its tasks hold

    def reserve(self, task_id: str, host_id: str, share: Share) -> bool:
        """False (and nothing counted) when the task holds a share already."""
        if task_id in self._held:
            return False
        self._held[task_id] = (host_id, share)
        self._totals[host_id] = self._totals.get(host_id, NOTHING) + share
        return True

    def release(self, task_id: str) -> str | None:
        """The host the task held a share on, or None when it held none."""
        held = self._held.pop(task_id, None)
        if held is None:
            return None
        host_id, share = held
        self._totals[host_id] = self._totals.get(host_id, NOTHING) - share
        return host_id

    def forget_host(self, host_id: str) -> None:
        self._totals.pop(host_id, None)
        for task_id in [t for t, (h, _) in self._held.items() if h == host_id]:
            del self._held[task_id]

    def on_host(self, host_id: str) -> Share:
        return self._totals.get(host_id, NOTHING)

    def tasks_on(self, host_id: str) -> list[str]:
        return [t for t, (h, _) in self._held.items() if h == host_id]

    def task_counts(self) -> dict[str, int]:
        """How many placed tasks each host holds."""
        counts: dict[str, int] = {}
        for host_id, _ in self._held.values():
            counts[host_id] = counts.get(host_id, 0) + 1
        return counts
