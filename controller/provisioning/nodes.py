"""A fleet's `nodes` range against the instances launched into it: how many to launch now to reach
the minimum, and which idle ones to terminate above the maximum. The shape of dstack's fleet
consolidation (`_maintain_fleet_nodes_in_min_max_range`): below `min`, create the missing ones
without waiting for a task; above `max` (a lowered `nodes`), terminate idle ones, never busy ones;
in between, `idle_duration` decides (instances.py).

Pure: fleets, launch records and the busy hosts in, a step out; the reconciler does the I/O.

What counts: the instances this controller launched into the fleet that are launching or running
(idle or busy). Hosts that joined the fleet with their own agent (on-prem, or a VM someone else
made) do not: `nodes` is what the controller provisions, as in dstack, where it is a cloud fleet's
field and an SSH fleet lists its hosts instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.configs.fleet import FleetConfiguration
from controller.statuses import InstanceStatus
from controller.store.records import InstanceRecord

# Launching and running count; terminating ones are going and gone ones went.
LIVE_STATUSES = frozenset({InstanceStatus.LAUNCHING, InstanceStatus.RUNNING})


@dataclass(frozen=True)
class Termination:
    launch_id: str
    fleet: str
    reason: str


@dataclass(frozen=True)
class NodesStep:
    launches: dict[str, int] = field(default_factory=dict)  # fleet -> instances to launch now
    terminations: tuple[Termination, ...] = ()  # idle instances above their fleet's maximum


def live_instances(fleet: str, records: Iterable[InstanceRecord]) -> list[InstanceRecord]:
    """The fleet's instances that count against its `nodes`: launching or running."""
    return [r for r in records if r.fleet == fleet and r.status in LIVE_STATUSES]


def is_idle(record: InstanceRecord, busy_hosts: frozenset[str]) -> bool:
    """Registered and running no task. A launching instance is not idle: it may be a task's."""
    return record.status == InstanceStatus.RUNNING and bool(record.host_id) and record.host_id not in busy_hosts


def nodes_step(
    fleets: Mapping[str, FleetConfiguration], records: Iterable[InstanceRecord], busy_hosts: frozenset[str]
) -> NodesStep:
    """One step towards every fleet's `nodes` range. Fleets without `nodes` provision nothing and
    are left alone (their idle instances follow idle_duration; a deleted fleet's, instances.py)."""
    records = list(records)
    launches: dict[str, int] = {}
    terminations: list[Termination] = []
    for name, fleet in sorted(fleets.items()):
        if fleet.nodes is None:
            continue
        live = live_instances(name, records)
        low, high = fleet.nodes.min or 0, fleet.nodes.max
        if len(live) < low:
            launches[name] = low - len(live)
        elif high is not None and len(live) > high:
            # The newest idle ones go first: the oldest have been up longest and are the least
            # likely to be a launch that is about to receive a task.
            idle = sorted((r for r in live if is_idle(r, busy_hosts)), key=lambda r: (r.created_at, r.id), reverse=True)
            reason = f"fleet {name} is above its nodes maximum ({high})"
            terminations.extend(Termination(r.id, name, reason) for r in idle[: len(live) - high])
    return NodesStep(launches, tuple(terminations))
