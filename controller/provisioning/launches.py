"""Launching for pending tasks: for each task no registered host fits, the cheapest fitting offer
of a fleet with room, a join token made for that launch, and the launch record written before the
cloud call (a restart from there on finds the record, and the tags the instance). What bursting
says about the task is its provisioning reason, a field of its own.

Launching for a fleet's `nodes` minimum goes the same way with no task: the fleet's own offers
(planning.Planner.fleet_plans), the same launch; what went wrong is the fleet's error."""

from __future__ import annotations

import asyncio
import logging
import uuid

from controller.backends.model import (
    TAG_CONTROLLER,
    TAG_FLEET,
    TAG_LAUNCH,
    TAG_TASK,
    BackendError,
    CapacityError,
    LaunchSpec,
    Offering,
)
from controller.backends.offers import sort_key
from controller.cloudinit import render_user_data
from controller.configs.fleet import FleetConfiguration
from controller.placement.model import Requirements
from controller.provisioning.context import BurstContext
from controller.provisioning.planning import Plan, Planner, cloud_miss_text
from controller.scheduling.requirements import SubmitError
from controller.statuses import InstanceStatus, TaskStatus
from controller.store.records import InstanceRecord, TaskRecord
from controller.tokens import create_token

log = logging.getLogger("dstack.controller.provisioning")

# A task whose launches keep ending without it running (its agent registers but the task does not
# fit, say) is not launched for forever: after this many launches it stays pending with the reason.
MAX_LAUNCHES_PER_TASK = 3
# Offerings tried in one pass after capacity errors, before waiting for the next pass.
MAX_ATTEMPTS_PER_PASS = 3
# A fleet whose nodes minimum could not be launched is tried again after this long (dstack's first
# consolidation retry delay), not at every pass: no offer fits, or the cloud keeps refusing.
NODES_RETRY_S = 60.0


class Launcher:
    def __init__(self, ctx: BurstContext, planner: Planner, controller_address: str) -> None:
        self.ctx = ctx
        self.planner = planner
        self.address = controller_address  # what launched instances' agents dial
        # Fleet -> when its nodes minimum is tried again after a failure. Memory only, as
        # ctx.blocked: after a restart every fleet is worth one more try.
        self.nodes_retry_at: dict[str, float] = {}
        self.last_failure = ""  # why the last launch call failed: a fleet's error names it

    async def launch_for_pending(self) -> None:
        store = self.ctx.store
        records = store.list_instances(include_gone=True)
        waiting = {r.task_id for r in records if r.status == InstanceStatus.LAUNCHING}
        launched: dict[str, int] = {}
        for r in records:
            launched[r.task_id] = launched.get(r.task_id, 0) + 1
        for task in store.list_tasks(include_finished=False):
            if task.status != TaskStatus.PENDING or task.stop_requested or task.id in waiting:
                continue
            if launched.get(task.id, 0) >= MAX_LAUNCHES_PER_TASK:
                continue
            try:
                req = await self.ctx.port.task_requirements(task)
            except (SubmitError, ValueError):
                continue
            if self.ctx.port.host_fits(req):
                continue  # a host fits: the scheduler will place it
            await self.launch_for(task, req)

    async def launch_for(self, task: TaskRecord, req: Requirements) -> bool:
        plans, notes = await self.planner.plans(task, req, with_room_only=True)
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
            outcome = await self.launch(plan, offering, task)
            if outcome:
                return True
        return False

    async def launch_for_nodes(self, name: str, fleet: FleetConfiguration, count: int) -> int:
        """Launches `count` instances into the fleet for its nodes minimum, with no task; how many
        launched. A failure says why in the fleet's error and waits NODES_RETRY_S."""
        ctx = self.ctx
        now = ctx.clock()
        if now < self.nodes_retry_at.get(name, 0.0):
            return 0
        plans, notes = await self.planner.fleet_plans(name, fleet)
        candidates = sorted(((o, plan) for plan in plans for o in plan.offers.fitting), key=lambda c: sort_key(c[0]))
        launched, attempts, why = 0, 0, ""
        while launched < count and attempts < MAX_ATTEMPTS_PER_PASS:
            # An offering that just failed is blocked (ctx.block): the next one is tried.
            usable = [(o, p) for o, p in candidates if ctx.blocked.get(o.key, 0.0) <= ctx.clock()]
            if not usable:
                break
            offering, plan = usable[0]
            if await self.launch(plan, offering):
                launched += 1
            else:
                attempts += 1
                why = self.last_failure
        if launched == count:
            self.nodes_retry_at.pop(name, None)
            self.fleet_error(name, "")
            return launched
        if not why:
            why = notes[0] if notes else cloud_miss_text([r for p in plans for r in p.offers.rejected])
        self.nodes_retry_at[name] = ctx.clock() + NODES_RETRY_S
        low = fleet.nodes.min if fleet.nodes is not None else 0
        self.fleet_error(name, f"cannot launch its nodes minimum ({low}): {why}")
        log.warning("fleet %s: launched %d of the %d instances its nodes minimum (%s) needs: %s; trying again in %ds",
                    name, launched, count, low, why, int(NODES_RETRY_S))  # fmt: skip
        return launched

    def fleet_error(self, name: str, error: str) -> None:
        """What `dstackctl fleet -v` shows in its ERROR column: why the fleet is short of nodes."""
        record = self.ctx.store.get_config("fleet", name)
        if record is not None and record.error != error:
            record.error = error
            self.ctx.store.put_config(record)

    def note_pending(self, task: TaskRecord, reason: str) -> None:
        """Sets the task's provisioning reason. Read fresh: the scheduler may have written the
        task (its placement reason, or placed it) while the cloud calls ran."""
        fresh = self.ctx.store.get_task(task.id)
        if fresh is None or fresh.status != TaskStatus.PENDING or fresh.provisioning_reason == reason:
            return
        fresh.provisioning_reason = reason
        self.ctx.port.save_task(fresh)
        self.ctx.port.publish_status(fresh)

    async def launch(self, plan: Plan, offering: Offering, task: TaskRecord | None = None) -> bool:
        """One launch into plan.fleet: for the task, or (no task) for the fleet's nodes minimum."""
        ctx = self.ctx
        backend = ctx.backends.get(plan.backend)
        itype = offering.instance_type
        launch_id = uuid.uuid4().hex[:12]
        token, token_text = create_token(
            ctx.store,
            "join",
            ttl_s=ctx.config.burst.register_timeout + 300,
            uses=1,
            fleet=plan.fleet,
            description=f"launch {launch_id}",  # for `token list`; registration reads launch_id
            ca_fingerprint=ctx.port.ca_fingerprint(),
            launch_id=launch_id,
        )
        record = InstanceRecord(
            id=launch_id,
            backend=plan.backend,
            region=offering.region,
            zone=offering.zone,
            instance_type=itype.name,
            fleet=plan.fleet,
            created_at=ctx.clock(),
            spot=offering.spot,
            price=offering.price,
            task_id=task.id if task is not None else "",
            token_id=token.id,
        )
        # Written before the call: a restart from here on finds the record (and the tags the instance).
        ctx.store.put_instance(record)
        try:
            image = await asyncio.to_thread(backend.boot_image, itype, offering.region)
            user_data = render_user_data(
                self.address,
                token_text,
                plan.fleet,
                package_url=ctx.config.burst.package_url.replace("{arch}", itype.arch),
                extra={"region": offering.region, "zone": offering.zone or None},
            )
            spec = LaunchSpec(
                name=f"dstack-{plan.fleet}-{launch_id}",
                offering=offering,
                image=image,
                user_data=user_data,
                tags={TAG_CONTROLLER: ctx.tag, TAG_FLEET: plan.fleet, TAG_LAUNCH: launch_id}
                | ({TAG_TASK: task.id} if task is not None else {}),
                disk_gb=ctx.config.burst.disk_gb,
            )
            instance = await asyncio.to_thread(backend.launch, spec)
        except CapacityError as exc:
            ctx.block(offering.key, ctx.clock())
            self._launch_failed(record, str(exc))
            self.last_failure = f"{itype.name} in {offering.zone or offering.region}: {exc}"
            if task is not None:
                self.note_pending(task, f"{self.last_failure}; trying another offer")
            return False
        except (BackendError, ValueError) as exc:
            ctx.block(offering.key, ctx.clock())
            self._launch_failed(record, str(exc))
            self.last_failure = str(exc)
            if task is not None:
                self.note_pending(task, str(exc))
            return False
        record.cloud_id, record.cloud_name = instance.instance_id, instance.name
        ctx.store.put_instance(record)
        market = "spot" if offering.spot else "on-demand"
        price = f", ${offering.price:.4g}/h" if offering.price is not None else ""
        where = f"{plan.backend} {offering.region}" + (f" ({offering.zone})" if offering.zone else "")
        purpose = f"task {task.name}" if task is not None else "its nodes minimum"
        log.info("launched %s %s (%s%s) in %s for %s, fleet %s", itype.name, instance.instance_id, market,
                 price, where, purpose, plan.fleet)  # fmt: skip
        if task is not None:
            self.note_pending(task, f"launched {itype.name} {instance.instance_id} in {where}, waiting for its agent")
        return True

    def _launch_failed(self, record: InstanceRecord, reason: str) -> None:
        record.status, record.reason = InstanceStatus.FAILED, reason
        self.ctx.store.put_instance(record)
        if record.token_id:
            self.ctx.store.revoke_token(record.token_id)
        log.warning("launch %s of %s in %s failed: %s", record.id, record.instance_type,
                    record.zone or record.region, reason)  # fmt: skip
