"""The client calls about clouds: cloud offers for `offers`, `instance-types check`, the instances
of a fleet, and creating cloud volumes on apply. Mixed into ClientService."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import date

import grpc
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.lifecycle import aws_lifecycle, azure_lifecycle
from controller.backends.model import BackendError, InstanceType, Offering
from controller.backends.offers import sort_key
from controller.configs.fleet import FleetConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.placement.model import Requirements
from controller.server.core import Controller
from controller.statuses import INSTANCE_IDLE, InstanceStatus
from controller.store.records import InstanceRecord, TaskRecord

log = logging.getLogger("dstack.controller.cloud")

# `offers` lists every usable offer, but of the rejected ones only this many per reason: a
# region has hundreds of sizes, and one example says as much as all of them.
REJECTED_SAMPLES_PER_REASON = 3


def offer_message(offering: Offering, fleet: str, chosen: bool = False, reason: str = "") -> pb.Offer:
    itype = offering.instance_type
    return pb.Offer(
        host=itype.name,
        chosen=chosen,
        reason=reason,
        arch=itype.arch or itype.raw_arch,
        region=offering.region,
        zone=offering.zone,
        fleet=fleet,
        backend=itype.backend,
        instance_type=itype.name,
        spot=offering.spot,
        price=offering.price or 0.0,
        has_price=offering.price is not None,
        vcpus=float(itype.vcpus),
        memory_bytes=itype.memory_bytes,
        gpus=len(itype.gpus),
    )


class CloudMixin:
    c: Controller

    async def cloud_offers(self, probe: TaskRecord, req: Requirements) -> tuple[list[pb.Offer], list[str], int]:
        burst = self.c.burst
        if burst is None or not burst.enabled:
            return [], [], 0  # an on-prem controller: `offers` says nothing about clouds
        plans, notes = await burst.plans(probe, req)
        usable: list[tuple[Offering, str]] = []
        rejected_by_reason: dict[str, list[tuple[Offering, str]]] = {}
        for plan in plans:
            usable.extend((o, plan.fleet) for o in plan.offers.fitting)
            for r in plan.offers.rejected:
                rejected_by_reason.setdefault(r.reason, []).append((r.offering, plan.fleet))
        usable.sort(key=lambda u: sort_key(u[0]))
        out = [offer_message(o, fleet, chosen=i == 0) for i, (o, fleet) in enumerate(usable)]
        left_out = 0
        for reason, rejected in sorted(rejected_by_reason.items(), key=lambda kv: -len(kv[1])):
            out.extend(offer_message(o, fleet, reason=reason) for o, fleet in rejected[:REJECTED_SAMPLES_PER_REASON])
            left_out += max(len(rejected) - REJECTED_SAMPLES_PER_REASON, 0)
        unknown = Counter(f"{o.instance_type.backend} {o.region}" for o, _ in usable if o.price is None)
        notes.extend(f"prices unknown for {where}: ranked by size" for where in sorted(unknown))
        return out, notes, left_out

    async def CheckInstanceTypes(
        self, request: pb.CheckInstanceTypesRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckInstanceTypesResponse:
        names = [n.strip() for n in request.names if n.strip()]
        if not names:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name at least one instance type")
        burst = self.c.burst
        if burst is None or not burst.enabled:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no cloud backend is configured (backends: in the controller's config file)",
            )
            raise AssertionError("unreachable")
        kinds = burst.backends.kinds
        if request.backend:
            if request.backend not in kinds:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"no {request.backend} backend is configured (configured: {', '.join(kinds)})",
                )
            kinds = [request.backend]
        checks: dict[str, list[pb.InstanceTypeCheck]] = {n: [] for n in names}
        notes: list[str] = []
        for kind in kinds:
            try:
                backend = burst.backends.get(kind)
                regions = await asyncio.to_thread(backend.regions)
                region = request.region or (regions[0] if regions else "")
                if request.region and request.region not in regions:
                    raise BackendError(f"{kind}: region {request.region} is not one of {', '.join(regions)}")
                described = await asyncio.to_thread(backend.describe, names, region)
            except BackendError as exc:
                notes.append(str(exc))
                continue
            for name in names:
                itype = described.get(name)
                if itype is None:
                    checks[name].append(pb.InstanceTypeCheck(name=name, backend=kind, region=region, found=False))
                    continue
                checks[name].append(await self._type_check(backend, itype, region))
        # A type one backend knows is not "missing" from the other: drop the not-found twins.
        out = []
        for name in names:
            found = [c for c in checks[name] if c.found]
            out.extend(found or checks[name][:1] or [pb.InstanceTypeCheck(name=name, found=False)])
        return pb.CheckInstanceTypesResponse(checks=out, notes=notes)

    async def _type_check(self, backend: object, itype: InstanceType, region: str) -> pb.InstanceTypeCheck:
        check = pb.InstanceTypeCheck(
            name=itype.name,
            backend=itype.backend,
            region=region,
            found=True,
            arch=itype.arch,
            raw_arch=itype.raw_arch,
            vcpus=itype.vcpus,
            memory_bytes=itype.memory_bytes,
            gpus=len(itype.gpus),
            gpu_name=itype.gpus[0].name if itype.gpus else "",
            hyperv_generations=list(itype.hyperv_generations),
            disk_controllers=list(itype.disk_controllers),
            burstable=itype.burstable,
            local_nvme_bytes=itype.local_nvme_bytes,
            family=itype.family,
        )
        if itype.unsupported:
            check.supported, check.reason = False, itype.unsupported
        else:
            try:
                image = await asyncio.to_thread(backend.boot_image, itype, region)  # type: ignore[attr-defined]
            except BackendError as exc:
                check.supported, check.reason = False, str(exc)
            else:
                check.supported = True
                check.image, check.generation, check.disk_controller = (
                    image.description or image.image,
                    image.generation,
                    image.disk_controller,
                )
                if itype.burstable:
                    check.reason = "burstable: left out of offers unless the fleet or task sets burstable: true"
        today = date.fromtimestamp(self.c.clock())
        if itype.backend == "azure":
            life = azure_lifecycle(itype.name, today)
        else:
            life = aws_lifecycle(itype.previous_generation)
        check.lifecycle, check.lifecycle_note = life.status, life.note
        return check

    async def check_fleet_regions(self, fleet: FleetConfiguration, context: grpc.aio.ServicerContext) -> None:
        """A cloud fleet's `regions` must be regions its backends' APIs list: a typo is an error that
        names the discovered ones, not a fleet that never launches. A backend that cannot be asked
        right now does not block the apply (its regions are checked again at every launch)."""
        burst = self.c.burst
        if burst is None or fleet.nodes is None or not fleet.regions:
            return
        kinds = [k for k in burst.backends.kinds if not fleet.backends or k in fleet.backends]
        known: dict[str, str] = {}
        for kind in kinds:
            try:
                regions = await asyncio.to_thread(burst.backends.get(kind).regions)
            except BackendError as exc:
                log.warning("fleet %s: cannot check its regions against %s: %s", fleet.name, kind, exc)
                return
            known.update({r.lower(): kind for r in regions})
        if not kinds:
            return
        unknown = [r for r in fleet.regions if r.lower() not in known]
        if unknown:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"fleet {fleet.name}: region {unknown[0]} is not one of the regions "
                f"{' and '.join(kinds)} list{'s' if len(kinds) == 1 else ''} ({', '.join(sorted(known))})",
            )

    def fleet_instances(self, fleet: str) -> list[pb.CloudInstance]:
        hosts = {h.id: h.name for h in self.c.store.list_hosts()}
        return [
            instance_message(r, hosts.get(r.host_id, ""))
            for r in self.c.store.list_instances()
            if r.fleet == fleet
        ]

    async def prepare_volume(
        self, config: VolumeConfiguration, context: grpc.aio.ServicerContext
    ) -> VolumeConfiguration:
        """A cloud volume is created (or the named one checked) before its config is stored."""
        if config.backend == "local":
            return config
        burst = self.c.burst
        if burst is None or config.backend not in burst.backends.kinds:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {config.name} is an {config.backend} volume, and no {config.backend} backend is "
                "configured (backends: in the controller's config file)",
            )
            raise AssertionError("unreachable")
        if config.backend == "aws" and not config.availability_zone:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"volume {config.name}: an EBS volume lives in one zone: set availability_zone",
            )
        try:
            return await burst.ensure_volume(config)
        except BackendError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"volume {config.name}: {exc}")
            raise AssertionError("unreachable") from None


def instance_message(record: InstanceRecord, host: str) -> pb.CloudInstance:
    status = record.status.value
    if record.status == InstanceStatus.RUNNING and record.idle_since is not None:
        status = INSTANCE_IDLE
    return pb.CloudInstance(
        backend=record.backend,
        region=record.region,
        zone=record.zone,
        instance_type=record.instance_type,
        instance_id=record.cloud_id,
        status=status,
        host=host,
        spot=record.spot,
        price=record.price or 0.0,
        launched_at_ms=int(record.created_at * 1000),
        task=record.task_id,
        reason=record.reason,
    )
