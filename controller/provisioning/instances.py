"""The launched instances against what the clouds list: records rebuilt from tags (adopt), records
of instances that are gone closed, launches whose agent never registered terminated, and idle
instances terminated after their fleet's `idle_duration`. The clouds' tags are the source of truth."""

from __future__ import annotations

import asyncio
import logging
import uuid

from controller.backends.model import TAG_CONTROLLER, TAG_FLEET, TAG_LAUNCH, TAG_TASK, BackendError, CloudInstance
from controller.provisioning.context import BurstContext
from controller.statuses import InstanceStatus
from controller.store.records import (
    InstanceRecord,
)

log = logging.getLogger("dstack.controller.provisioning")

# A record written just before a launch call that the cloud does not list yet: wait this long
# before deciding the launch never happened (clouds list new instances within seconds).
LAUNCH_VISIBILITY_GRACE_S = 120.0


class Instances:
    def __init__(self, ctx: BurstContext) -> None:
        self.ctx = ctx

    async def sync_inventory(self) -> None:
        """Reads each backend's instances by the controller's tag and makes the records agree."""
        ctx = self.ctx
        records = {r.id: r for r in ctx.store.list_instances()}
        for kind in ctx.backends.kinds:
            try:
                backend = ctx.backends.get(kind)
                listed = await asyncio.to_thread(backend.instances, ctx.tag)
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
                    ctx.store.put_instance(record)
            now = ctx.clock()
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
            created_at=instance.launched_at or self.ctx.clock(),
            spot=instance.spot,
            task_id=instance.tags.get(TAG_TASK, ""),
            cloud_id=instance.instance_id,
            cloud_name=instance.name,
        )
        host = self._host_of_instance(instance.instance_id)
        if host:
            record.status, record.host_id, record.registered_at = InstanceStatus.RUNNING, host, self.ctx.clock()
        self.ctx.store.put_instance(record)
        log.info("found %s instance %s (%s) of launch %s without a record: adopted", instance.backend,
                 instance.instance_id, instance.instance_type, launch_id)  # fmt: skip
        return record

    def _host_of_instance(self, cloud_id: str) -> str:
        for host in self.ctx.store.list_hosts():
            if self.ctx.port.host_facts(host).cloud.instance_id == cloud_id:
                return host.id
        return ""

    def forget_instance(self, record: InstanceRecord, reason: str) -> None:
        """The instance no longer exists: drop its host, fail what ran there, close the record."""
        ctx = self.ctx
        if record.host_id:
            ctx.port.remove_host(record.host_id, f"its instance {record.cloud_id} is gone")
        if record.token_id:
            ctx.store.revoke_token(record.token_id)
        was_up = record.status in (InstanceStatus.RUNNING, InstanceStatus.TERMINATING)
        record.status = InstanceStatus.TERMINATED if was_up else InstanceStatus.FAILED
        record.reason = record.reason or reason
        ctx.store.put_instance(record)
        log.info("instance %s (%s, launch %s): %s", record.cloud_id or "-", record.instance_type, record.id, reason)
        ctx.port.wake()

    async def expire_launches(self) -> None:
        """No agent within register_timeout: terminate it, block the offering, try another."""
        ctx = self.ctx
        now = ctx.clock()
        timeout = ctx.config.burst.register_timeout
        for record in ctx.store.list_instances():
            if record.status != InstanceStatus.LAUNCHING or now - record.created_at < timeout:
                continue
            ctx.block(offering_key(record), now)
            record.reason = f"no agent registered within {timeout // 60}m{timeout % 60:02d}s"
            await self.terminate(record)
            log.warning("launch %s (%s in %s): %s; the offering is blocked for a while", record.id,
                        record.instance_type, record.zone or record.region, record.reason)  # fmt: skip

    async def terminate_idle(self) -> None:
        ctx = self.ctx
        now = ctx.clock()
        busy = {t.host_id for t in ctx.store.list_tasks(include_finished=False) if t.status.active_on_host}
        records = ctx.store.list_instances()
        for record in records:
            if record.status != InstanceStatus.RUNNING or not record.host_id:
                continue
            if record.host_id in busy:
                if record.idle_since is not None:
                    record.idle_since = None
                    ctx.store.put_instance(record)
                continue
            if record.idle_since is None:
                record.idle_since = now
                ctx.store.put_instance(record)
            fleet = ctx.port.fleets.get(record.fleet)
            # A deleted fleet keeps no instances; `idle_duration: off` keeps them for good.
            idle_limit = 0 if fleet is None else fleet.idle_duration
            if idle_limit is None or now - record.idle_since < idle_limit:
                continue
            keep = fleet.nodes.min if fleet is not None and fleet.nodes is not None and fleet.nodes.min else 0
            running = [r for r in records if r.fleet == record.fleet and r.status == InstanceStatus.RUNNING]
            if len(running) <= keep:
                continue
            idle_for = f"idle for {int(now - record.idle_since)}s"
            record.reason = idle_for if fleet is not None else f"{idle_for}, its fleet {record.fleet} was deleted"
            await self.terminate(record)
            records = ctx.store.list_instances()

    async def terminate(self, record: InstanceRecord) -> None:
        ctx = self.ctx
        record.status = InstanceStatus.TERMINATING
        ctx.store.put_instance(record)
        try:
            backend = ctx.backends.get(record.backend)
            await asyncio.to_thread(backend.terminate, instance_of(record, ctx.tag))
        except BackendError as exc:
            log.warning("terminating %s failed (retried at the next inventory): %s", record.cloud_id, exc)
            record.status = InstanceStatus.RUNNING if record.host_id else InstanceStatus.LAUNCHING
            ctx.store.put_instance(record)
            return
        log.info("terminated %s instance %s (%s): %s", record.backend, record.cloud_id, record.instance_type,
                 record.reason)  # fmt: skip
        self.forget_instance(record, record.reason or "terminated")


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
