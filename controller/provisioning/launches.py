"""Launching for pending tasks: for each task no registered host fits, the cheapest fitting offer
of a fleet with room, a join token made for that launch, and the launch record written before the
cloud call (a restart from there on finds the record, and the tags the instance). What bursting
says about the task is its provisioning reason, a field of its own."""

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


class Launcher:
    def __init__(self, ctx: BurstContext, planner: Planner, controller_address: str) -> None:
        self.ctx = ctx
        self.planner = planner
        self.address = controller_address  # what launched instances' agents dial

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
            outcome = await self.launch(task, plan, offering)
            if outcome:
                return True
        return False

    def note_pending(self, task: TaskRecord, reason: str) -> None:
        """Sets the task's provisioning reason. Read fresh: the scheduler may have written the
        task (its placement reason, or placed it) while the cloud calls ran."""
        fresh = self.ctx.store.get_task(task.id)
        if fresh is None or fresh.status != TaskStatus.PENDING or fresh.provisioning_reason == reason:
            return
        fresh.provisioning_reason = reason
        self.ctx.port.save_task(fresh)
        self.ctx.port.publish_status(fresh)

    async def launch(self, task: TaskRecord, plan: Plan, offering: Offering) -> bool:
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
            task_id=task.id,
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
                tags={TAG_CONTROLLER: ctx.tag, TAG_FLEET: plan.fleet, TAG_LAUNCH: launch_id, TAG_TASK: task.id},
                disk_gb=ctx.config.burst.disk_gb,
            )
            instance = await asyncio.to_thread(backend.launch, spec)
        except CapacityError as exc:
            ctx.block(offering.key, ctx.clock())
            self._launch_failed(record, str(exc))
            self.note_pending(task, f"{itype.name} in {offering.zone or offering.region}: {exc}; trying another offer")
            return False
        except (BackendError, ValueError) as exc:
            ctx.block(offering.key, ctx.clock())
            self._launch_failed(record, str(exc))
            self.note_pending(task, str(exc))
            return False
        record.cloud_id, record.cloud_name = instance.instance_id, instance.name
        ctx.store.put_instance(record)
        market = "spot" if offering.spot else "on-demand"
        price = f", ${offering.price:.4g}/h" if offering.price is not None else ""
        where = f"{plan.backend} {offering.region}" + (f" ({offering.zone})" if offering.zone else "")
        log.info("launched %s %s (%s%s) in %s for task %s, fleet %s", itype.name, instance.instance_id, market,
                 price, where, task.name, plan.fleet)  # fmt: skip
        self.note_pending(task, f"launched {itype.name} {instance.instance_id} in {where}, waiting for its agent")
        return True

    def _launch_failed(self, record: InstanceRecord, reason: str) -> None:
        record.status, record.reason = InstanceStatus.FAILED, reason
        self.ctx.store.put_instance(record)
        if record.token_id:
            self.ctx.store.revoke_token(record.token_id)
        log.warning("launch %s of %s in %s failed: %s", record.id, record.instance_type,
                    record.zone or record.region, reason)  # fmt: skip
