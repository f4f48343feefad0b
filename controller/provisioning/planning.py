"""Which fleets may provision for a task, and the ranked offers of each backend for them: what a
launch chooses from and what `dstackctl offers` shows. Reads the clouds' catalogues, writes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from controller.backends.model import BackendError, Offering
from controller.backends.offers import OfferList, OfferPolicy, RejectedOffer, rank_offers
from controller.configs.fleet import FleetConfiguration
from controller.configs.task import TaskConfiguration
from controller.placement.model import Requirements
from controller.provisioning.context import BurstContext
from controller.provisioning.nodes import live_instances
from controller.scheduling import taskspec
from controller.scheduling.requirements import fleet_requirements
from controller.store.records import TaskRecord


@dataclass(frozen=True)
class Plan:
    backend: str
    fleet: str
    offers: OfferList


class Planner:
    def __init__(self, ctx: BurstContext) -> None:
        self.ctx = ctx
        self.known_zones: set[str] = set()  # zones seen in offerings: tasks may name them

    async def plans(
        self, task: TaskRecord, req: Requirements, with_room_only: bool = False
    ) -> tuple[list[Plan], list[str]]:
        """Per (backend, fleet) that may provision for the task: the ranked offers. Notes say what
        could not be asked (a backend's error) or why no fleet may provision. `with_room_only`
        leaves out fleets at their nodes maximum before any ranking (a launch could not use them;
        `offers` still shows them)."""
        config = taskspec.parse(task.configuration_json)
        notes: list[str] = []
        fleets = self.cloud_fleets(config)
        if not fleets:
            notes.append(no_fleet_note(config))
            return [], notes
        if with_room_only:
            full = [(name, fleet) for name, fleet in fleets if not self.fleet_room(name, fleet)]
            notes.extend(f"fleet {name} is at its nodes maximum ({fleet.nodes.max if fleet.nodes else 0})"
                         for name, fleet in full)  # fmt: skip
            fleets = [(name, fleet) for name, fleet in fleets if all(name != n for n, _ in full)]
            if not fleets:
                return [], notes
        wanted = wanted_regions(config, [f for _, f in fleets], req)
        plans = await self.ranked(fleets, req, config, wanted, notes)
        return plans, notes

    async def fleet_plans(self, name: str, fleet: FleetConfiguration) -> tuple[list[Plan], list[str]]:
        """The ranked offers for an instance of the fleet's own, with no task: its `nodes`
        minimum. Chosen as a task's launch into the fleet is (its backends, regions, zones, spot
        policy, max price, burstable), sized by the fleet's `resources`."""
        notes: list[str] = []
        wanted = frozenset(r.lower() for r in fleet.regions) or None
        plans = await self.ranked([(name, fleet)], fleet_requirements(fleet), None, wanted, notes)
        return plans, notes

    async def ranked(
        self,
        fleets: list[tuple[str, FleetConfiguration]],
        req: Requirements,
        config: TaskConfiguration | None,
        wanted: frozenset[str] | None,
        notes: list[str],
    ) -> list[Plan]:
        """Per backend the fleets (and the task, when there is one) allow: the ranked offers."""
        plans: list[Plan] = []
        for kind in self.ctx.backends.kinds:
            offerings, errors = await self.offerings(kind, wanted)
            notes.extend(errors)
            if not offerings:
                continue
            for name, fleet in fleets:
                if fleet.backends and kind not in fleet.backends:
                    continue
                if config is not None and config.backends and kind not in config.backends:
                    continue
                policy = self.policy(name, fleet, config)
                # Tens of milliseconds over a large catalogue: off the event loop.
                ranked = await asyncio.to_thread(rank_offers, req, offerings, policy)
                plans.append(Plan(kind, name, ranked))
        return plans

    def cloud_fleets(self, config: TaskConfiguration) -> list[tuple[str, FleetConfiguration]]:
        """Fleets that provision instances (a `nodes` range with room above zero) the task may use."""
        found = []
        for name, fleet in sorted(self.ctx.port.fleets.items()):
            if fleet.nodes is None or fleet.nodes.max == 0:
                continue
            if config.fleets and name not in config.fleets:
                continue
            found.append((name, fleet))
        return found

    def policy(self, name: str, fleet: FleetConfiguration, config: TaskConfiguration | None) -> OfferPolicy:
        """What buying into the fleet allows; a task's own fields win over the fleet's."""
        task_spot = config.spot_policy if config is not None else None
        task_price = config.max_price if config is not None else None
        task_burstable = config.burstable if config is not None else None
        return OfferPolicy(
            fleet=name,
            fleet_regions=frozenset(r.lower() for r in fleet.regions) or None,
            fleet_zones=frozenset(fleet.availability_zones) or None,
            spot_policy=task_spot or fleet.spot_policy or "on-demand",
            max_price=task_price if task_price is not None else fleet.max_price,
            burstable=task_burstable if task_burstable is not None else fleet.burstable,
            disk_bytes=self.ctx.config.burst.disk_gb * 10**9,
            blocked=dict(self.ctx.blocked),
            now=self.ctx.clock(),
        )

    async def offerings(self, kind: str, wanted: frozenset[str] | None = None) -> tuple[list[Offering], list[str]]:
        """Every offering of the backend's regions (only those in `wanted`, when given: each region
        costs the API calls of a full listing the first time)."""
        try:
            backend = self.ctx.backends.get(kind)
            regions = await asyncio.to_thread(backend.regions)
        except BackendError as exc:
            return [], [str(exc)]
        if wanted is not None:
            regions = [r for r in regions if r.lower() in wanted]
        found: list[Offering] = []
        errors: list[str] = []
        for region in regions:
            try:
                found.extend(await asyncio.to_thread(backend.offerings, region))
            except BackendError as exc:
                errors.append(str(exc))
        self.known_zones |= {o.zone for o in found if o.zone}
        return found, errors

    def fleet_room(self, fleet_name: str, fleet: FleetConfiguration) -> bool:
        if fleet.nodes is None:
            return False
        if fleet.nodes.max is None:
            return True
        return len(live_instances(fleet_name, self.ctx.store.list_instances())) < fleet.nodes.max


def wanted_regions(
    config: TaskConfiguration, fleets: list[FleetConfiguration], req: Requirements
) -> frozenset[str] | None:
    """The regions a launch for this task could be in, lower case, when something narrows them:
    the task's `regions`, every candidate fleet's `regions`, the regions of the volumes it mounts."""
    found: frozenset[str] | None = None

    def narrow(regions: frozenset[str]) -> None:
        nonlocal found
        found = regions if found is None else found & regions

    if config.regions:
        narrow(frozenset(r.lower() for r in config.regions))
    if fleets and all(f.regions for f in fleets):
        narrow(frozenset(r.lower() for f in fleets for r in f.regions))
    for mount in req.mounts:
        narrow(frozenset(o.region.lower() for o in mount.options))
    return found


def no_fleet_note(config: TaskConfiguration) -> str:
    if config.fleets:
        return f"none of the fleets {', '.join(config.fleets)} provisions instances (a cloud fleet has nodes:)"
    return "no fleet provisions instances (apply a fleet with nodes: and backends:)"


def cloud_miss_text(rejected: list[RejectedOffer]) -> str:
    """The most common reason among the rejected offers, for a pending task's provisioning reason."""
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    if not counts:
        return "no cloud offer fits"
    reason, n = max(counts.items(), key=lambda kv: kv[1])
    return f"no offer fits ({n} of {len(rejected)}: {reason})"
