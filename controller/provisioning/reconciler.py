"""The burst reconciler: every pass compares what should exist (pending tasks that no host fits,
fleets' `nodes` and `idle_duration`) with what does (the store's launch records and the clouds'
inventories, read by the controller's tag) and takes one step towards it. A launch record is
written before the launch call and a restart that finds an instance whose record is missing
rebuilds it from the tags, so nothing is launched twice or forgotten.

Cloud calls block; they run in threads (asyncio.to_thread), one pass at a time. The server reaches
bursting through this class only: the loop, `plans` for `offers`, volumes, and launch claims."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.config import ControllerFileConfig
from controller.backends.model import CloudVolume
from controller.backends.registry import Backends
from controller.configs.volume import VolumeConfiguration
from controller.placement.model import Requirements
from controller.provisioning.claims import Claims
from controller.provisioning.context import BurstContext
from controller.provisioning.instances import Instances
from controller.provisioning.launches import Launcher
from controller.provisioning.nodes import nodes_step
from controller.provisioning.planning import Plan, Planner
from controller.provisioning.port import ControllerPort
from controller.provisioning.volumes import Volumes
from controller.store import Store
from controller.store.records import InstanceRecord, TaskRecord, TokenRecord

log = logging.getLogger("dstack.controller.provisioning")

INVENTORY_INTERVAL_S = 30.0


class Burster:
    def __init__(
        self,
        port: ControllerPort,
        store: Store,
        config: ControllerFileConfig,
        controller_tag: str,
        controller_address: str,
        backends: Backends | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = BurstContext(port, store, config, backends or Backends(list(config.backends)), controller_tag, clock)
        self.planner = Planner(self.ctx)
        self.instances = Instances(self.ctx)
        self.launcher = Launcher(self.ctx, self.planner, controller_address)
        self.volumes = Volumes(self.ctx)
        self.claims = Claims(self.ctx)
        self._inventory_at = 0.0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def backends(self) -> Backends:
        return self.ctx.backends

    @property
    def enabled(self) -> bool:
        return bool(self.ctx.backends.kinds)

    @property
    def known_zones(self) -> set[str]:
        """Zones seen in the clouds' offerings: tasks may name them."""
        return self.planner.known_zones

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
            now = self.ctx.clock()
            if now - self._inventory_at >= INVENTORY_INTERVAL_S:
                await self.instances.sync_inventory()
                self._inventory_at = now
            await self.instances.expire_launches()
            if self.enabled:
                # Tasks first: an instance launched for a task counts towards its fleet's minimum
                # too, and is sized for the task rather than for the fleet's `resources`.
                await self.launcher.launch_for_pending()
                await self.keep_nodes()
            await self.instances.terminate_idle()

    async def keep_nodes(self) -> None:
        """One step towards every fleet's `nodes` range (nodes.py decides, this does it): launch
        up to the minimum without a task, terminate idle instances above the maximum."""
        ctx = self.ctx
        busy = frozenset(t.host_id for t in ctx.store.list_tasks(include_finished=False) if t.status.active_on_host)
        fleets = ctx.port.fleets
        step = nodes_step(fleets, ctx.store.list_instances(), busy)
        for term in step.terminations:
            record = ctx.store.get_instance(term.launch_id)
            if record is not None and not record.gone:
                record.reason = term.reason
                await self.instances.terminate(record)
        for name, count in step.launches.items():
            await self.launcher.launch_for_nodes(name, fleets[name], count)

    # ------------------------------------------------------- what the services call
    async def plans(
        self, task: TaskRecord, req: Requirements, with_room_only: bool = False
    ) -> tuple[list[Plan], list[str]]:
        return await self.planner.plans(task, req, with_room_only)

    async def ensure_volume(self, config: VolumeConfiguration) -> VolumeConfiguration:
        return await self.volumes.ensure_volume(config)

    async def attach(self, config: VolumeConfiguration, host_id: str) -> CloudVolume:
        return await self.volumes.attach(config, host_id)

    def claim(self, token: TokenRecord, facts: pb.HostFacts) -> InstanceRecord | None:
        return self.claims.claim(token, facts)

    def registered(self, record: InstanceRecord, host_id: str) -> None:
        self.claims.registered(record, host_id)
