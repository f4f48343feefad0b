"""Cloud bursting: launch an instance when no registered host fits a pending task, place the task
when that instance's agent registers, and terminate instances that stay idle.

A reconciler, like Karpenter's: every pass compares what should exist (pending tasks that no host
fits, fleets' `nodes` and `idle_duration`) with what does (the store's launch records and the
clouds' inventories, read by the controller's tag) and takes one step towards it. The cloud's tags
are the source of truth: a launch record is written before the launch call, and a restart that
finds an instance whose record is missing rebuilds it from the tags, so nothing is launched twice
or forgotten.

Cloud calls block; they run in threads (asyncio.to_thread), one pass at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.config import ControllerFileConfig
from controller.backends.model import (
    CLOUD_MARKER,
    TAG_CONTROLLER,
    TAG_FLEET,
    TAG_LAUNCH,
    TAG_TASK,
    BackendError,
    CapacityError,
    CloudInstance,
    CloudVolume,
    LaunchSpec,
    Offering,
)
from controller.backends.offers import OfferList, OfferPolicy, RejectedOffer, rank_offers, sort_key
from controller.backends.registry import Backends
from controller.cloudinit import render_user_data
from controller.configs.fleet import FleetConfiguration
from controller.configs.task import TaskConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.placement.model import Requirements
from controller.statuses import InstanceStatus, TaskStatus
from controller.store.records import (
    InstanceRecord,
    TaskRecord,
    TokenRecord,
)
from controller.tasks import taskspec
from controller.tasks.requirements import SubmitError
from controller.tokens import create_token

if TYPE_CHECKING:
    from controller.server.core import Controller

log = logging.getLogger("dstack.controller.burst")

# A task whose launches keep ending without it running (its agent registers but the task does not
# fit, say) is not launched for forever: after this many launches it stays pending with the reason.
MAX_LAUNCHES_PER_TASK = 3
# Offerings tried in one pass after capacity errors, before waiting for the next pass.
MAX_ATTEMPTS_PER_PASS = 3
INVENTORY_INTERVAL_S = 30.0
# A record written just before a launch call that the cloud does not list yet: wait this long
# before deciding the launch never happened (clouds list new instances within seconds).
LAUNCH_VISIBILITY_GRACE_S = 120.0


class ClaimRefused(Exception):
    """A launch's join token presented by a host that is not (or not yet) that launch's instance."""

    def __init__(self, reason: str, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry  # the launch is not recorded yet: the agent's next attempt may pass


@dataclass(frozen=True)
class Plan:
    backend: str
    fleet: str
    offers: OfferList


class Burster:
    def __init__(
        self,
        controller: Controller,
        config: ControllerFileConfig,
        controller_tag: str,
        controller_address: str,
        backends: Backends | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.c = controller
        self.config = config
        self.tag = controller_tag
        self.address = controller_address
        self.backends = backends or Backends(list(config.backends))
        self.clock = clock
        self.blocked: dict[str, float] = {}  # offering key -> until
        self.attachments: dict[tuple[str, str], CloudVolume] = {}  # (volume name, host id) -> attached volume
        self._inventory_at = 0.0
        self.known_zones: set[str] = set()  # zones seen in offerings: tasks may name them
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.backends.kinds)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # a bug or an outage here must not stop bursting for good
                log.exception("burst pass failed")

    async def reconcile(self) -> None:
        async with self._lock:
            now = self.clock()
            if now - self._inventory_at >= INVENTORY_INTERVAL_S:
                await self.sync_inventory()
                self._inventory_at = now
            await self.expire_launches()
            await self.launch_for_pending()
            await self.terminate_idle()

    # ------------------------------------------------------------ what exists
    async def sync_inventory(self) -> None:
        """Reads each backend's instances by the controller's tag and makes the records agree."""
        records = {r.id: r for r in self.c.store.list_instances()}
        for kind in self.backends.kinds:
            try:
                backend = self.backends.get(kind)
                listed = await asyncio.to_thread(backend.instances, self.tag)
            except BackendError as exc:
                log.warning("cannot list %s instances: %s", kind, exc)
                continue
            by_launch = {i.tags.get(TAG_LAUNCH, ""): i for i in listed if not i.gone}
            for launch_id, instance in by_launch.items():
                record = records.get(launch_id)
                if record is None:
                    self.adopt(instance)
                elif not record.cloud_id:
                    # The launch call returned (or the controller stopped) before its answer was saved.
                    record.cloud_id, record.cloud_name = instance.instance_id, instance.name
                    self.c.store.put_instance(record)
            now = self.clock()
            for record in records.values():
                if record.backend != kind or record.id in by_launch or record.status == InstanceStatus.TERMINATING:
                    continue
                if not record.cloud_id and now - record.created_at < LAUNCH_VISIBILITY_GRACE_S:
                    continue  # the launch call may still be in flight
                self.forget_instance(record, f"the instance is gone from {kind}")

    def adopt(self, instance: CloudInstance) -> InstanceRecord:
        """An instance this controller launched whose record is missing: rebuilt from its tags."""
        launch_id = instance.tags.get(TAG_LAUNCH) or uuid.uuid4().hex[:12]
        record = InstanceRecord(
            id=launch_id,
            backend=instance.backend,
            region=instance.region,
            zone=instance.zone,
            instance_type=instance.instance_type,
            fleet=instance.tags.get(TAG_FLEET, ""),
            created_at=instance.launched_at or self.clock(),
            spot=instance.spot,
            task_id=instance.tags.get(TAG_TASK, ""),
            cloud_id=instance.instance_id,
            cloud_name=instance.name,
        )
        host = self._host_of_instance(instance.instance_id)
        if host:
            record.status, record.host_id, record.registered_at = InstanceStatus.RUNNING, host, self.clock()
        self.c.store.put_instance(record)
        log.info("found %s instance %s (%s) of launch %s without a record: adopted", instance.backend,
                 instance.instance_id, instance.instance_type, launch_id)  # fmt: skip
        return record

    def _host_of_instance(self, cloud_id: str) -> str:
        for host in self.c.store.list_hosts():
            facts = self.c.host_facts(host)
            if facts.cloud.instance_id == cloud_id:
                return host.id
        return ""

    def forget_instance(self, record: InstanceRecord, reason: str) -> None:
        """The instance no longer exists: drop its host, fail what ran there, close the record."""
        if record.host_id:
            self.c.remove_host(record.host_id, f"its instance {record.cloud_id} is gone")
        if record.token_id:
            self.c.store.revoke_token(record.token_id)
        was_up = record.status in (InstanceStatus.RUNNING, InstanceStatus.TERMINATING)
        record.status = InstanceStatus.TERMINATED if was_up else InstanceStatus.FAILED
        record.reason = record.reason or reason
        self.c.store.put_instance(record)
        log.info("instance %s (%s, launch %s): %s", record.cloud_id or "-", record.instance_type, record.id, reason)
        self.c.wake()

    # ----------------------------------------------------------- registration
    def claim(self, token: TokenRecord, facts: pb.HostFacts) -> InstanceRecord | None:
        """For a join token made for a launch: the launch record, or ClaimRefused saying why this
        host is not its instance. A copy of the user-data read off another machine is no use: the
        host's metadata must name the instance. None for a token made for no launch."""
        if not token.description.startswith("launch "):
            return None
        record = self.c.store.get_instance(token.description.removeprefix("launch "))
        if record is None or record.gone:
            raise ClaimRefused("this join token's launch is over")
        said = facts.cloud.instance_id if facts.HasField("cloud") else ""
        if not record.cloud_id:
            raise ClaimRefused("the launch is not recorded yet; retry", retry=True)
        if said != record.cloud_id or (facts.cloud.provider and facts.cloud.provider != record.backend):
            raise ClaimRefused(
                f"this join token is for {record.backend} instance {record.cloud_id}; "
                f"the host's metadata says {said or 'no instance'}"
            )
        return record

    def registered(self, record: InstanceRecord, host_id: str) -> None:
        record.status, record.host_id, record.registered_at = InstanceStatus.RUNNING, host_id, self.clock()
        self.c.store.put_instance(record)
        log.info("instance %s (launch %s) registered as host %s", record.cloud_id, record.id, host_id)

    # ----------------------------------------------------------- launching
    async def expire_launches(self) -> None:
        """No agent within register_timeout: terminate it, block the offering, try another."""
        now = self.clock()
        timeout = self.config.burst.register_timeout
        for record in self.c.store.list_instances():
            if record.status != InstanceStatus.LAUNCHING or now - record.created_at < timeout:
                continue
            self.block(offering_key(record), now)
            record.reason = f"no agent registered within {timeout // 60}m{timeout % 60:02d}s"
            await self.terminate(record)
            log.warning("launch %s (%s in %s): %s; the offering is blocked for a while", record.id,
                        record.instance_type, record.zone or record.region, record.reason)  # fmt: skip

    def block(self, key: str, now: float) -> None:
        self.blocked[key] = now + self.config.burst.blocked_for

    async def launch_for_pending(self) -> None:
        if not self.enabled:
            return
        records = self.c.store.list_instances(include_gone=True)
        waiting = {r.task_id for r in records if r.status == InstanceStatus.LAUNCHING}
        launched: dict[str, int] = {}
        for r in records:
            launched[r.task_id] = launched.get(r.task_id, 0) + 1
        for task in self.c.store.list_tasks(include_finished=False):
            if task.status != TaskStatus.PENDING or task.stop_requested or task.id in waiting:
                continue
            if launched.get(task.id, 0) >= MAX_LAUNCHES_PER_TASK:
                continue
            try:
                req = await self.c.task_requirements(task)
            except (SubmitError, ValueError):
                continue
            if self.c.index.place(req).chosen is not None:
                continue  # a host fits: the scheduler will place it
            await self.launch_for(task, req)

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
            full = [name for name, fleet in fleets if not self.fleet_room(name, fleet)]
            notes.extend(f"fleet {name} is at its nodes maximum" for name in full)
            fleets = [(name, fleet) for name, fleet in fleets if name not in full]
            if not fleets:
                return [], notes
        plans: list[Plan] = []
        wanted = wanted_regions(config, [f for _, f in fleets], req)
        for kind in self.backends.kinds:
            offerings, errors = await self.offerings(kind, wanted)
            notes.extend(errors)
            if not offerings:
                continue
            for name, fleet in fleets:
                if fleet.backends and kind not in fleet.backends:
                    continue
                if config.backends and kind not in config.backends:
                    continue
                policy = self.policy(name, fleet, config)
                # Tens of milliseconds over a large catalogue: off the event loop.
                ranked = await asyncio.to_thread(rank_offers, req, offerings, policy)
                plans.append(Plan(kind, name, ranked))
        return plans, notes

    def cloud_fleets(self, config: TaskConfiguration) -> list[tuple[str, FleetConfiguration]]:
        """Fleets that provision instances (a `nodes` range with room above zero) the task may use."""
        found = []
        for name, fleet in sorted(self.c.fleets.items()):
            if fleet.nodes is None or fleet.nodes.max == 0:
                continue
            if config.fleets and name not in config.fleets:
                continue
            found.append((name, fleet))
        return found

    def policy(self, name: str, fleet: FleetConfiguration, config: TaskConfiguration) -> OfferPolicy:
        return OfferPolicy(
            fleet=name,
            fleet_regions=frozenset(r.lower() for r in fleet.regions) or None,
            fleet_zones=frozenset(fleet.availability_zones) or None,
            spot_policy=config.spot_policy or fleet.spot_policy or "on-demand",
            max_price=config.max_price if config.max_price is not None else fleet.max_price,
            burstable=config.burstable if config.burstable is not None else fleet.burstable,
            disk_bytes=self.config.burst.disk_gb * 10**9,
            blocked=dict(self.blocked),
            now=self.clock(),
        )

    async def offerings(self, kind: str, wanted: frozenset[str] | None = None) -> tuple[list[Offering], list[str]]:
        """Every offering of the backend's regions (only those in `wanted`, when given: each region
        costs the API calls of a full listing the first time)."""
        try:
            backend = self.backends.get(kind)
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
        active = [r for r in self.c.store.list_instances() if r.fleet == fleet_name]
        return len(active) < fleet.nodes.max

    async def launch_for(self, task: TaskRecord, req: Requirements) -> bool:
        plans, notes = await self.plans(task, req, with_room_only=True)
        candidates = [(o, plan) for plan in plans for o in plan.offers.fitting]
        candidates.sort(key=lambda c: sort_key(c[0]))
        if not candidates:
            reason = notes[0] if notes else "no cloud offer fits"
            if plans and not notes:
                rejected = [r for p in plans for r in p.offers.rejected]
                reason = cloud_miss_text(rejected)
            self.note_pending(task, reason)
            return False
        for offering, plan in candidates[:MAX_ATTEMPTS_PER_PASS]:
            outcome = await self.launch(task, plan, offering)
            if outcome:
                return True
        return False

    def note_pending(self, task: TaskRecord, cloud_reason: str) -> None:
        base = task.reason.split(CLOUD_MARKER)[0]
        reason = f"{base}{CLOUD_MARKER}{cloud_reason}" if base else f"cloud: {cloud_reason}"
        if reason != task.reason:
            task.reason = reason
            self.c.store.update_task(task)
            self.c.publish_status(task)

    async def launch(self, task: TaskRecord, plan: Plan, offering: Offering) -> bool:
        backend = self.backends.get(plan.backend)
        itype = offering.instance_type
        launch_id = uuid.uuid4().hex[:12]
        token, token_text = create_token(
            self.c.store,
            "join",
            ttl_s=self.config.burst.register_timeout + 300,
            uses=1,
            fleet=plan.fleet,
            description=f"launch {launch_id}",
            ca_fingerprint=self.c.ca_fingerprint(),
        )
        record = InstanceRecord(
            id=launch_id,
            backend=plan.backend,
            region=offering.region,
            zone=offering.zone,
            instance_type=itype.name,
            fleet=plan.fleet,
            created_at=self.clock(),
            spot=offering.spot,
            price=offering.price,
            task_id=task.id,
            token_id=token.id,
        )
        # Written before the call: a restart from here on finds the record (and the tags the instance).
        self.c.store.put_instance(record)
        try:
            image = await asyncio.to_thread(backend.boot_image, itype, offering.region)
            user_data = render_user_data(
                self.address,
                token_text,
                plan.fleet,
                package_url=self.config.burst.package_url.replace("{arch}", itype.arch),
                extra={"region": offering.region, "zone": offering.zone or None},
            )
            spec = LaunchSpec(
                name=f"dstack-{plan.fleet}-{launch_id}",
                offering=offering,
                image=image,
                user_data=user_data,
                tags={TAG_CONTROLLER: self.tag, TAG_FLEET: plan.fleet, TAG_LAUNCH: launch_id, TAG_TASK: task.id},
                disk_gb=self.config.burst.disk_gb,
            )
            instance = await asyncio.to_thread(backend.launch, spec)
        except CapacityError as exc:
            self.block(offering.key, self.clock())
            self._launch_failed(record, str(exc))
            self.note_pending(task, f"{itype.name} in {offering.zone or offering.region}: {exc}; trying another offer")
            return False
        except (BackendError, ValueError) as exc:
            self.block(offering.key, self.clock())
            self._launch_failed(record, str(exc))
            self.note_pending(task, str(exc))
            return False
        record.cloud_id, record.cloud_name = instance.instance_id, instance.name
        self.c.store.put_instance(record)
        market = "spot" if offering.spot else "on-demand"
        price = f", ${offering.price:.4g}/h" if offering.price is not None else ""
        where = f"{plan.backend} {offering.region}" + (f" ({offering.zone})" if offering.zone else "")
        log.info("launched %s %s (%s%s) in %s for task %s, fleet %s", itype.name, instance.instance_id, market,
                 price, where, task.name, plan.fleet)  # fmt: skip
        self.note_pending(task, f"launched {itype.name} {instance.instance_id} in {where}, waiting for its agent")
        return True

    def _launch_failed(self, record: InstanceRecord, reason: str) -> None:
        record.status, record.reason = InstanceStatus.FAILED, reason
        self.c.store.put_instance(record)
        if record.token_id:
            self.c.store.revoke_token(record.token_id)
        log.warning("launch %s of %s in %s failed: %s", record.id, record.instance_type,
                    record.zone or record.region, reason)  # fmt: skip

    # ------------------------------------------------------------ idle
    async def terminate_idle(self) -> None:
        now = self.clock()
        busy = {t.host_id for t in self.c.store.list_tasks(include_finished=False) if t.status.active_on_host}
        records = self.c.store.list_instances()
        for record in records:
            if record.status != InstanceStatus.RUNNING or not record.host_id:
                continue
            if record.host_id in busy:
                if record.idle_since is not None:
                    record.idle_since = None
                    self.c.store.put_instance(record)
                continue
            if record.idle_since is None:
                record.idle_since = now
                self.c.store.put_instance(record)
            fleet = self.c.fleets.get(record.fleet)
            # A deleted fleet keeps no instances; `idle_duration: off` keeps them for good.
            idle_limit = 0 if fleet is None else fleet.idle_duration
            if idle_limit is None or now - record.idle_since < idle_limit:
                continue
            keep = fleet.nodes.min if fleet is not None and fleet.nodes is not None and fleet.nodes.min else 0
            running = [r for r in records if r.fleet == record.fleet and r.status == InstanceStatus.RUNNING]
            if len(running) <= keep:
                continue
            record.reason = f"idle for {int(now - record.idle_since)}s"
            await self.terminate(record)
            records = self.c.store.list_instances()

    async def terminate(self, record: InstanceRecord) -> None:
        record.status = InstanceStatus.TERMINATING
        self.c.store.put_instance(record)
        try:
            backend = self.backends.get(record.backend)
            await asyncio.to_thread(backend.terminate, instance_of(record, self.tag))
        except BackendError as exc:
            log.warning("terminating %s failed (retried at the next inventory): %s", record.cloud_id, exc)
            record.status = InstanceStatus.RUNNING if record.host_id else InstanceStatus.LAUNCHING
            self.c.store.put_instance(record)
            return
        log.info("terminated %s instance %s (%s): %s", record.backend, record.cloud_id, record.instance_type,
                 record.reason)  # fmt: skip
        self.forget_instance(record, record.reason or "terminated")

    # ------------------------------------------------------------ volumes
    async def ensure_volume(self, config: VolumeConfiguration) -> VolumeConfiguration:
        """Creates the cloud volume (or checks the named one exists where the config says):
        the config with its volume_id, or BackendError with the reason."""
        backend = self.backends.get(config.backend)
        zone = config.availability_zone or ""
        if config.volume_id:
            found = await asyncio.to_thread(backend.get_volume, config.region, config.volume_id)
            if found is None:
                raise BackendError(f"{config.backend} {config.region}: volume {config.volume_id} does not exist")
            if zone and found.zone and found.zone.lower() != zone.lower():
                raise BackendError(
                    f"volume {config.volume_id} is in {found.zone}, not {zone} as the configuration says"
                )
            return config
        if config.size is None:
            raise BackendError(f"volume {config.name} has neither size nor volume_id")
        tags = {TAG_CONTROLLER: self.tag, "dstack-hybrid-volume": config.name}
        created = await asyncio.to_thread(backend.create_volume, config.name, config.region, zone, config.size, tags)
        log.info("created %s volume %s (%s) in %s", config.backend, config.name, created.volume_id,
                 created.zone or created.region)  # fmt: skip
        return config.model_copy(update={"volume_id": created.volume_id})

    async def attach(self, config: VolumeConfiguration, host_id: str) -> CloudVolume:
        """Attaches the volume to the instance of the host (idempotent) and remembers where."""
        backend = self.backends.get(config.backend)
        record = next((r for r in self.c.store.list_instances() if r.host_id == host_id), None)
        host = self.c.store.get_host(host_id)
        facts = self.c.host_facts(host) if host else None
        cloud_id = record.cloud_id if record else (facts.cloud.instance_id if facts is not None else "")
        if not cloud_id or not config.volume_id:
            raise BackendError(f"host {host_id} is not a {config.backend} instance this controller knows")
        instance = CloudInstance(
            backend=config.backend,
            region=config.region,
            zone=config.availability_zone or "",
            instance_id=cloud_id,
            instance_type=record.instance_type if record else "",
            state="running",
            name=record.cloud_name if record and record.cloud_name else cloud_id,
        )
        volume = await asyncio.to_thread(backend.get_volume, config.region, config.volume_id)
        if volume is None:
            raise BackendError(f"volume {config.volume_id} no longer exists in {config.backend} {config.region}")
        attached = await asyncio.to_thread(backend.attach_volume, volume, instance)
        self.attachments[(config.name, host_id)] = attached
        return attached


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


def instance_of(record: InstanceRecord, tag: str) -> CloudInstance:
    return CloudInstance(
        backend=record.backend,
        region=record.region,
        zone=record.zone,
        instance_id=record.cloud_id,
        instance_type=record.instance_type,
        state="running",
        tags={TAG_CONTROLLER: tag, TAG_LAUNCH: record.id},
        spot=record.spot,
        name=record.cloud_name or record.cloud_id,
    )


def offering_key(record: InstanceRecord) -> str:
    market = "spot" if record.spot else "on-demand"
    return f"{record.backend}/{record.region}/{record.zone}/{record.instance_type}/{market}"


def no_fleet_note(config: TaskConfiguration) -> str:
    if config.fleets:
        return f"none of the fleets {', '.join(config.fleets)} provisions instances (a cloud fleet has nodes:)"
    return "no fleet provisions instances (apply a fleet with nodes: and backends:)"


def cloud_miss_text(rejected: list[RejectedOffer]) -> str:
    """The most common reason among the rejected offers, for a pending task's reason."""
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    if not counts:
        return "no cloud offer fits"
    reason, n = max(counts.items(), key=lambda kv: kv[1])
    return f"no offer fits ({n} of {len(rejected)}: {reason})"

