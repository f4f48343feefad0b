"""Fleets, volumes and offers: the ClientService calls that read or change applied configurations."""

from __future__ import annotations

import logging

import grpc
from dstack_hybrid.shared.bounded_input import InputRefused, check_json
from dstack_hybrid.v1 import hybrid_pb2 as pb
from pydantic import ValidationError

from controller.configs.fleet import FleetConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.placement import place
from controller.scheduling import taskspec
from controller.scheduling.requirements import SubmitError, check_zones
from controller.server.cloud_service import CloudMixin
from controller.server.core import Controller
from controller.status_wire import host_state
from controller.statuses import HostStatus
from controller.store.records import ConfigRecord

log = logging.getLogger("dstack.controller.configs")

MODELS: dict[str, type[FleetConfiguration] | type[VolumeConfiguration]] = {
    "fleet": FleetConfiguration,
    "volume": VolumeConfiguration,
}


class ConfigsMixin(CloudMixin):
    """Mixed into ClientService; `c` is the controller, auth is done by the caller."""

    c: Controller

    async def apply(self, request: pb.ApplyRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        model = MODELS.get(request.kind)
        if model is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot apply a {request.kind or 'nameless'} configuration: only fleet and volume files",
            )
            raise AssertionError("unreachable")
        try:
            check_json(request.configuration_json, f"the {request.kind} configuration")
            config = model.model_validate_json(request.configuration_json)
        except InputRefused as exc:  # the bounds dstackctl applies to the YAML, for clients that skip it
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        except ValidationError as exc:
            why = taskspec.first_error(exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {request.kind}: {why}")
            raise AssertionError("unreachable") from None
        # Stored as the controller serialises it, so applying the same file again compares equal.
        text = config.model_dump_json()
        now = self.c.clock()
        existing = self.c.store.get_config(request.kind, config.name)
        if existing is not None and existing.configuration_json == text:
            return pb.ApplyResponse(kind=request.kind, name=config.name, action="unchanged")
        if isinstance(config, FleetConfiguration):
            await self.check_fleet_regions(config, context)
        if isinstance(config, VolumeConfiguration) and config.backend != "local":
            created = created_volume_id(existing, config)
            if created:
                # The volume this config created before: applying the same file again keeps it.
                return pb.ApplyResponse(kind=request.kind, name=config.name, action="unchanged")
            config = await self.prepare_volume(config, context)
            text = config.model_dump_json()
        self.c.store.put_config(ConfigRecord(request.kind, config.name, text, created_at=now, updated_at=now))
        self.c.reload_configs()
        self.c.wake()  # a new fleet or volume may let a pending task run
        action = "updated" if existing is not None else "created"
        log.info("%s %s %s", request.kind, config.name, action)
        return pb.ApplyResponse(kind=request.kind, name=config.name, action=action)

    async def delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> pb.DeleteResponse:
        if request.kind not in MODELS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "delete takes fleet or volume")
        if self.c.store.get_config(request.kind, request.name) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no {request.kind} named {request.name!r}")
        if request.kind == "fleet":
            members = [h for h in self.c.index.hosts() if h.fleet == request.name]
            on_members = {h.id for h in members}
            # The tasks that name the fleet, and those on its hosts (which may name none): an
            # offline host's tasks are as much in use as a live one's, and the operator must see them.
            tasks = [
                t.name
                for t in self.c.store.list_tasks(include_finished=False)
                if t.host_id in on_members or request.name in taskspec.parse(t.configuration_json).fleets
            ]
            if (members or tasks) and not request.force:
                hosts = [f"host {h.name}" + ("" if h.live else " (offline)") for h in members]
                users = ", ".join([*_first(hosts, "hosts"), *_first([f"task {t}" for t in tasks], "tasks")])
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"fleet {request.name} is in use ({users}); pass --force to delete it anyway",
                )
        else:
            attached = self.attached(request.name)
            if attached:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {request.name} is attached to {', '.join(attached)}; stop them first",
                )
        self.c.store.delete_config(request.kind, request.name)
        if request.kind == "volume":
            self.c.store.delete_attachments(volume=request.name)
        self.c.reload_configs()
        log.info("%s %s deleted", request.kind, request.name)
        return pb.DeleteResponse()

    def attached(self, volume: str) -> list[str]:
        """Active tasks on a host that mount this volume there."""
        found = []
        for task in self.c.store.list_tasks(include_finished=False):
            if task.host_id:
                mounts = self.c.mounts_for(taskspec.parse(task.configuration_json), task.host_id)
                if any(m.volume == volume for m in mounts):
                    found.append(task.name)
        return found

    async def list_fleets(self) -> pb.ListFleetsResponse:
        fleets = []
        for record in self.c.store.list_configs("fleet"):
            hosts = [self.host_message(h) for h in self.c.store.list_hosts() if h.fleet == record.name]  # type: ignore[attr-defined]
            fleets.append(
                pb.Fleet(
                    name=record.name,
                    configuration_json=record.configuration_json,
                    status=record.status,
                    error=record.error,
                    created_at_ms=int(record.created_at * 1000),
                    hosts=hosts,
                    instances=self.fleet_instances(record.name),
                )
            )
        return pb.ListFleetsResponse(fleets=fleets)

    async def list_volumes(self) -> pb.ListVolumesResponse:
        return pb.ListVolumesResponse(
            volumes=[
                pb.Volume(
                    name=r.name,
                    configuration_json=r.configuration_json,
                    status=r.status,
                    error=r.error,
                    created_at_ms=int(r.created_at * 1000),
                    attached=self.attached(r.name),
                )
                for r in self.c.store.list_configs("volume")
            ]
        )

    async def offers(self, request: pb.OffersRequest, context: grpc.aio.ServicerContext) -> pb.OffersResponse:
        try:
            config = taskspec.parse(request.configuration_json)
            zones = self.c.zones_to_check()
            if zones is not None:
                check_zones(config, zones)
            probe = self.c.probe_task(config, request.configuration_json)
            req = await self.c.task_requirements(probe)
        except (ValueError, SubmitError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        decision = place(req, self.c.index.hosts())
        rejected = {r.host: r.reason for r in decision.rejections}
        offers = []
        for view in sorted(
            self.c.index.hosts(), key=lambda v: (v.name != (decision.chosen.name if decision.chosen else ""), v.name)
        ):
            chosen = decision.chosen is not None and view.id == decision.chosen.id
            status = HostStatus.of(view.live)
            offers.append(
                pb.Offer(
                    host=view.name,
                    chosen=chosen,
                    reason="" if chosen else rejected.get(view.name, ""),
                    arch=view.arch,
                    region=view.region,
                    zone=view.zone,
                    fleet=view.fleet,
                    backend=view.backend,
                    cpu_free=view.cpu_free,
                    memory_free_bytes=view.memory_free_bytes,
                    gpus_free=max(len(view.gpus) - view.gpus_used, 0),
                    status=status.value,
                    state=host_state(status),
                    volumes=[v.name for v in decision.volumes] if chosen else [],
                )
            )
        cloud, notes, left_out = await self.cloud_offers(probe, req)
        return pb.OffersResponse(
            offers=offers, reason=decision.reason, cloud_offers=cloud, cloud_notes=notes, cloud_offers_left_out=left_out
        )


def created_volume_id(existing: ConfigRecord | None, config: VolumeConfiguration) -> str:
    """The volume id the controller stored for this config when it created the volume, if the
    config is otherwise the same (the user's file has no volume_id; the stored config has one)."""
    if existing is None or config.volume_id:
        return ""
    stored = VolumeConfiguration.model_validate_json(existing.configuration_json)
    if stored.volume_id and stored.model_copy(update={"volume_id": None}) == config:
        return stored.volume_id
    return ""


def _first(names: list[str], what: str, shown: int = 5) -> list[str]:
    """The first few names, then how many more: a sentence, not a listing of thousands."""
    return names if len(names) <= shown else [*names[:shown], f"{len(names) - shown} more {what}"]
