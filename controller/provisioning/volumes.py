"""Cloud volumes: creating one when a volume config is applied, and attaching it to the instance
of the host a task was placed on. Where it was attached (the device serial or the LUN the agent
finds the disk by) is written to the store, so an assignment built after a restart names it too."""

from __future__ import annotations

import asyncio
import logging

from controller.backends.model import TAG_CONTROLLER, BackendError, CloudInstance, CloudVolume
from controller.configs.volume import VolumeConfiguration
from controller.provisioning.context import BurstContext
from controller.store.records import AttachmentRecord

log = logging.getLogger("dstack.controller.provisioning")


class Volumes:
    def __init__(self, ctx: BurstContext) -> None:
        self.ctx = ctx

    async def ensure_volume(self, config: VolumeConfiguration) -> VolumeConfiguration:
        """Creates the cloud volume (or checks the named one exists where the config says):
        the config with its volume_id, or BackendError with the reason."""
        backend = self.ctx.backends.get(config.backend)
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
        tags = {TAG_CONTROLLER: self.ctx.tag, "dstack-hybrid-volume": config.name}
        created = await asyncio.to_thread(backend.create_volume, config.name, config.region, zone, config.size, tags)
        log.info("created %s volume %s (%s) in %s", config.backend, config.name, created.volume_id,
                 created.zone or created.region)  # fmt: skip
        return config.model_copy(update={"volume_id": created.volume_id})

    async def attach(self, config: VolumeConfiguration, host_id: str) -> CloudVolume:
        """Attaches the volume to the instance of the host (idempotent) and records where."""
        ctx = self.ctx
        backend = ctx.backends.get(config.backend)
        record = next((r for r in ctx.store.list_instances() if r.host_id == host_id), None)
        host = ctx.store.get_host(host_id)
        facts = ctx.port.host_facts(host) if host else None
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
        ctx.store.put_attachment(
            AttachmentRecord(
                volume=config.name,
                host_id=host_id,
                volume_id=attached.volume_id or config.volume_id,
                device_serial=attached.device_serial,
                lun=attached.lun,
                attached_at=ctx.clock(),
            )
        )
        return attached
