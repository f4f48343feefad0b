"""The controller's state machine: placing pending tasks, and applying what agents report.

Everything is re-derived from the store, so a restart in the middle is harmless: pending
tasks are placed again, and agents re-announce their containers when they reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.model import CLOUD_MARKER, BackendError
from controller.configs.fleet import FleetConfiguration
from controller.configs.task import TaskConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.images.platforms import PlatformLookup, native_arches
from controller.lifecycle.task_events import SUPPORTED_ARCHES, Report, on_report
from controller.placement import HostIndex, HostView, Requirements
from controller.placement.rules import volume_matches
from controller.server import taskspec
from controller.server.convert import host_facts, task_message
from controller.server.events import TaskEvents
from controller.server.requirements import AppliedVolume, SubmitError, requirements, volume_option
from controller.server.sessions import Sessions
from controller.server.views import host_view
from controller.settings import ControllerSettings
from controller.store import StorageError, Store
from controller.store.records import (
    ACTIVE_ON_HOST,
    FAILED,
    PENDING,
    PROVISIONING,
    HostRecord,
    TaskRecord,
)
from controller.tls import ServerTLS, load_ca

if TYPE_CHECKING:
    from controller.backends.burst import Burster

log = logging.getLogger("dstack.controller")


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        store: Store,
        lookup: PlatformLookup,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.lookup = lookup
        self.clock = clock
        self.sessions = Sessions()
        self.events = TaskEvents()
        self.index = HostIndex()
        self.fleets: dict[str, FleetConfiguration] = {}
        self.volumes: dict[str, AppliedVolume] = {}
        self.reservations: dict[str, tuple[str, float, int, int]] = {}  # task -> (host, cpu, memory, gpus)
        self.usage: dict[str, tuple[float, int, int]] = {}  # host -> what its tasks hold
        self._liveness_checked_at = 0.0
        # Bumped whenever a pending task might fit now (a host came or changed, capacity was
        # freed, fleets or volumes changed); a pass over pending tasks with nothing new is skipped,
        # because each one that fits nowhere costs a look at every host.
        self.generation = 0
        self._scheduled_generation = -1
        self._full_pass_at = 0.0
        self._zones: tuple[int, set[str]] = (-1, set())
        self._unfit: dict[Requirements, str] = {}
        self._unfit_generation = -1
        self.tls: ServerTLS | None = None  # None with --insecure
        self.agent_port = 0
        self._wake = asyncio.Event()
        self._schedule_lock = asyncio.Lock()
        self.burst: Burster | None = None  # set when the config file configures backends
        self._ca_fingerprint = ""
        self._attaching: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ views
    def host_name(self, host_id: str) -> str:
        view = self.index.get(host_id) if host_id else None
        if view is not None:
            return view.name
        host = self.store.get_host(host_id) if host_id else None
        return host.name if host else ""

    def task_message(self, task: TaskRecord) -> pb.Task:
        try:
            resources = taskspec.resources_text(taskspec.parse(task.configuration_json))
        except ValueError:
            resources = ""
        return task_message(task, self.host_name(task.host_id), resources)

    def host_facts(self, host: HostRecord) -> pb.HostFacts:
        return host_facts(host)

    def ca_fingerprint(self) -> str:
        """What join tokens pin; the CA exists with --insecure too (tokens keep one format)."""
        if not self._ca_fingerprint:
            ca = self.tls.ca if self.tls else load_ca(self.settings.data_dir)[0]
            self._ca_fingerprint = ca.fingerprint
        return self._ca_fingerprint

    def remove_host(self, host_id: str, reason: str) -> HostRecord | None:
        """Forgets a host: its active tasks fail with `reason`, its certificate stops connecting."""
        host = self.store.get_host(host_id)
        if host is None:
            return None
        now = self.clock()
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id == host.id:
                task.status, task.reason, task.finished_at = FAILED, reason, now
                self.store.update_task(task)
                self.release(task.id)
                self.publish_status(task)
        # Deleting the record revokes its certificate: the next handshake names a host that is gone.
        self.store.delete_host(host.id)
        self.forget_host(host.id)
        session = self.sessions.get(host.id)
        if session is not None:
            session.close()
        log.info("host %s (%s) removed: %s", host.name, host.id, reason)
        return host

    def is_live(self, host_id: str, now: float) -> bool:
        session = self.sessions.get(host_id)
        return session is not None and now - session.last_seen <= self.settings.host_grace_s

    # ------------------------------------------------- the in-memory picture
    def load(self) -> None:
        """Builds the index from the store: at start, so a restart loses nothing."""
        self.reload_configs(refresh=False)
        for host in self.store.list_hosts():
            self.refresh_host(host)
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id and task.status in ACTIVE_ON_HOST:
                try:
                    req = self.static_requirements(task)
                except (ValueError, SubmitError):
                    continue
                self.reserve(task.id, task.host_id, req.cpu, req.memory_bytes, req.gpu.count_min if req.gpu else 0)

    def reload_configs(self, refresh: bool = True) -> None:
        self.fleets = {}
        for record in self.store.list_configs("fleet"):
            self.fleets[record.name] = FleetConfiguration.model_validate_json(record.configuration_json)
        self.volumes = {}
        for record in self.store.list_configs("volume"):
            config = VolumeConfiguration.model_validate_json(record.configuration_json)
            self.volumes[record.name] = AppliedVolume(config, record.status)
        self.generation += 1
        if refresh:
            for host in self.store.list_hosts():
                self.refresh_host(host)

    def refresh_host(self, host: HostRecord) -> HostView:
        """Re-derives one host's view (facts, fleet, liveness) and keeps what its tasks hold."""
        fleet = self.fleets.get(host.fleet)
        view = host_view(
            host,
            host_facts(host),
            self.is_live(host.id, self.clock()),
            frozenset(r.lower() for r in fleet.regions) or None if fleet else None,
            frozenset(fleet.availability_zones) or None if fleet else None,
        )
        cpu, memory, gpus = self.usage.get(host.id, (0.0, 0, 0))
        view = dataclasses.replace(view, cpu_used=cpu, memory_used_bytes=memory, gpus_used=gpus)
        if self.index.get(host.id) != view:
            self.index.upsert(view)
            self.generation += 1
        return view

    def forget_host(self, host_id: str) -> None:
        self.index.remove(host_id)
        self.generation += 1
        self.usage.pop(host_id, None)
        for task_id in [t for t, r in self.reservations.items() if r[0] == host_id]:
            del self.reservations[task_id]

    def reserve(self, task_id: str, host_id: str, cpu: float, memory: int, gpus: int) -> None:
        if task_id in self.reservations:
            return
        self.reservations[task_id] = (host_id, cpu, memory, gpus)
        c, m, g = self.usage.get(host_id, (0.0, 0, 0))
        self.usage[host_id] = (c + cpu, m + memory, g + gpus)
        if self.index.get(host_id) is not None:
            self.index.reserve(host_id, cpu, memory, gpus)

    def release(self, task_id: str) -> None:
        held = self.reservations.pop(task_id, None)
        if held is None:
            return
        host_id, cpu, memory, gpus = held
        c, m, g = self.usage.get(host_id, (0.0, 0, 0))
        self.usage[host_id] = (max(c - cpu, 0.0), max(m - memory, 0), max(g - gpus, 0))
        if self.index.get(host_id) is not None:
            self.index.release(host_id, cpu, memory, gpus)
        self.generation += 1

    def refresh_liveness(self) -> None:
        """Hosts go offline by the clock, not by an event: re-check them all, at most once a
        second (connects and disconnects refresh their own host at once; this finds the silent)."""
        now = self.clock()
        if now - self._liveness_checked_at < 1.0:
            return
        self._liveness_checked_at = now
        for view in list(self.index.hosts()):
            if view.live != self.is_live(view.id, now):
                self.index.upsert(dataclasses.replace(view, live=not view.live))
                self.generation += 1

    def zones_to_check(self) -> set[str] | None:
        """The zones a task may name, or None when they cannot be known yet (a bursting controller
        that has not read its clouds' offerings: any zone there may be real)."""
        if self.burst is not None and self.burst.enabled and not self.burst.known_zones:
            return None
        return self.known_zones()

    def known_zones(self) -> set[str]:
        if self._zones[0] == self.generation:
            return self._zones[1] | self.burst.known_zones if self.burst is not None else self._zones[1]
        zones = {v.zone for v in self.index.hosts() if v.zone}
        zones |= {z for f in self.fleets.values() for z in f.availability_zones}
        zones |= {v.config.availability_zone for v in self.volumes.values() if v.config.availability_zone}
        self._zones = (self.generation, zones)
        # The clouds' zones change without a generation bump: added outside the cached set.
        return zones | self.burst.known_zones if self.burst is not None else zones

    # ------------------------------------------------------------- scheduling
    def wake(self) -> None:
        self._wake.set()
        if self.burst is not None:
            self.burst.wake()

    async def run_scheduler(self) -> None:
        """Reconciler loop: place pending tasks on every change, and every few seconds
        (hosts go offline by the clock, not by an event)."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            self._wake.clear()
            try:
                self.refresh_liveness()
                await self.schedule_pending()
            except StorageError:
                # The store said it once; the pass runs again when woken or in 5 s, and places
                # what it could not write now once space returns.
                self._scheduled_generation = -1
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")

    def probe_task(self, config: TaskConfiguration, configuration_json: str) -> TaskRecord:
        """A task that is never stored: what `offers` asks placement about."""
        return TaskRecord(
            id="offers",
            name=config.name or "offers",
            configuration_json=configuration_json,
            image=config.image,
            submitted_at=self.clock(),
        )

    def static_requirements(
        self,
        task: TaskRecord,
        arches: frozenset[str] | None = None,
        source: str = "",
        platforms: frozenset[str] | None = None,
    ) -> Requirements:
        config = taskspec.parse(task.configuration_json)
        explicit = taskspec.explicit_arch(config)
        if explicit:
            arches, source, platforms = frozenset({explicit}), "resources.cpu", None
        elif task.arch:
            arches, source, platforms = frozenset({task.arch}), "refusal", None
        return requirements(config, arches, source, frozenset(task.refused_hosts), self.volumes, platforms)

    async def task_requirements(self, task: TaskRecord) -> Requirements:
        """Adds what the registry says about the image when the task names no arch."""
        config = taskspec.parse(task.configuration_json)
        if taskspec.explicit_arch(config) or task.arch:
            return self.static_requirements(task)
        platforms = await asyncio.to_thread(self.lookup.platforms, task.image)
        if platforms is None:
            return self.static_requirements(task)
        return self.static_requirements(task, native_arches(platforms) & SUPPORTED_ARCHES, "image", platforms)

    async def schedule_pending(self) -> None:
        async with self._schedule_lock:
            now = self.clock()
            if self.generation == self._scheduled_generation and now - self._full_pass_at < 60:
                # Nothing changed since the last pass: every pending task would fail again. Once a
                # minute they are tried anyway, for what no event reports (a registry back online).
                return
            self._scheduled_generation, self._full_pass_at = self.generation, now
            for task in self.store.list_tasks(include_finished=False):
                if task.status == PENDING:
                    await self._try_place(task)

    async def place_new(self, task: TaskRecord) -> TaskRecord:
        """Stores a just-submitted task after one placement attempt, so the reply already says
        where or why not, and the task is written once, not twice."""
        async with self._schedule_lock:
            await self._try_place(task, stored=False)
        return task

    async def _try_place(self, task: TaskRecord, stored: bool = True) -> None:
        try:
            req = await self.task_requirements(task)
        except SubmitError as exc:  # e.g. a volume deleted since the submit
            self._set_pending_reason(task, str(exc), stored)
            return
        unfit = self._unfit.get(req) if self._unfit_generation == self.generation else None
        if unfit is None:
            decision = self.index.place(req)
        if unfit is not None or decision.chosen is None:
            # Explaining a miss looks at every host; until something changes (reservations only
            # shrink what is free), the same requirements miss for the same reason.
            if unfit is None:
                if self._unfit_generation != self.generation:
                    self._unfit, self._unfit_generation = {}, self.generation
                unfit = self._unfit[req] = decision.reason
            reason = f"{task.refusal} ({unfit})" if task.refusal else unfit
            self._set_pending_reason(task, reason, stored)
            return
        host = decision.chosen
        task.status, task.host_id, task.reason = PROVISIONING, host.id, ""
        if stored:
            self.store.update_task(task)
        else:
            self.store.add_task(task)
        self.reserve(task.id, host.id, req.cpu, req.memory_bytes, decision.gpus)
        log.info("task %s placed on %s", task.name, host.name)
        self.publish_status(task)
        cloud_volumes = [v for v in decision.volumes if v.backend != "local"]
        if cloud_volumes:
            # The cloud attaches the volume first (seconds); the assignment then names the device.
            attaching = asyncio.ensure_future(self._attach_then_assign(task, host.id, [v.name for v in cloud_volumes]))
            self._attaching.add(attaching)
            attaching.add_done_callback(self._attaching.discard)
        else:
            self.sessions.send(host.id, self.assignment(task))

    async def _attach_then_assign(self, task: TaskRecord, host_id: str, volume_names: list[str]) -> None:
        for name in volume_names:
            applied = self.volumes.get(name)
            try:
                if applied is None:
                    raise BackendError("the volume was deleted")
                if self.burst is None:
                    raise BackendError(f"no {applied.config.backend} backend is configured to attach it")
                await self.burst.attach(applied.config, host_id)
            except BackendError as exc:
                fresh = self.store.get_task(task.id) or task
                fresh.status, fresh.reason, fresh.finished_at = FAILED, f"attaching volume {name}: {exc}", self.clock()
                self.store.update_task(fresh)
                self.release(fresh.id)
                self.publish_status(fresh)
                log.warning("task %s failed: %s", fresh.name, fresh.reason)
                return
        current = self.store.get_task(task.id)
        if current is not None and current.host_id == host_id and current.status in ACTIVE_ON_HOST:
            self.sessions.send(host_id, self.assignment(current))

    def _set_pending_reason(self, task: TaskRecord, reason: str, stored: bool = True) -> None:
        # What bursting says ("...; cloud: launched m7g.large ...") stays until bursting changes it.
        _, marker, cloud = task.reason.partition(CLOUD_MARKER)
        if marker:
            reason = f"{reason}{CLOUD_MARKER}{cloud}"
        if not stored:
            task.reason = reason
            self.store.add_task(task)
            log.info("task %s pending: %s", task.name, reason)
        elif task.reason != reason:
            task.reason = reason
            self.store.update_task(task)
            self.publish_status(task)
            log.info("task %s pending: %s", task.name, reason)

    def mounts_for(self, config: TaskConfiguration, host_id: str) -> list[pb.Mount]:
        """Bind mounts on that host: instance paths as given; for a volume list, the first
        volume in list order available there (the same choice placement made)."""
        view = self.index.get(host_id)
        found = []
        for mount in config.volumes:
            if mount.instance_path:
                found.append(pb.Mount(source=mount.instance_path, target=mount.path))
                continue
            for name in mount.name or []:
                applied = self.volumes.get(name)
                if applied is not None and view is not None and volume_matches(volume_option(applied.config), view):
                    found.append(self.volume_mount(applied.config, mount.path, host_id))
                    break
        return found

    def volume_mount(self, config: VolumeConfiguration, target: str, host_id: str) -> pb.Mount:
        if config.backend == "local":
            return pb.Mount(source=config.path or "", target=target, volume=config.name)
        attached = self.burst.attachments.get((config.name, host_id)) if self.burst else None
        volume_id = config.volume_id or ""
        # EBS volumes show up on Nitro instances as NVMe devices whose serial is the id without its dash.
        serial = attached.device_serial if attached else (volume_id.replace("-", "") if config.backend == "aws" else "")
        lun = attached.lun if attached is not None and attached.lun is not None else -1
        return pb.Mount(target=target, volume=config.name, cloud_volume_id=volume_id, device_serial=serial, lun=lun)

    def assignment(self, task: TaskRecord) -> pb.ControllerMessage:
        counts = self.store.log_counts(task.id)
        config = taskspec.parse(task.configuration_json)
        run = taskspec.run_spec(config)
        run.mounts.extend(self.mounts_for(config, task.host_id))
        return pb.ControllerMessage(
            assign=pb.Assignment(
                task_id=task.id,
                task_name=task.name,
                run=run,
                stdout_offset=counts.get(pb.LOG_STREAM_STDOUT, 0),
                stderr_offset=counts.get(pb.LOG_STREAM_STDERR, 0),
                started=task.started_at is not None,
            )
        )

    def stop_message(self, task: TaskRecord) -> pb.ControllerMessage:
        return pb.ControllerMessage(
            stop=pb.StopTask(task_id=task.id, abort=task.abort_requested, grace_s=self.settings.stop_grace_s)
        )

    def publish_status(self, task: TaskRecord) -> None:
        self.events.publish(task.id, pb.LogEvent(status=self.task_message(task)))

    # ------------------------------------------------------- agent reports
    def on_hello(self, host: HostRecord, container_task_ids: list[str]) -> list[pb.ControllerMessage]:
        """What a (re)connected agent must do: re-adopt or start its tasks, stop what was
        stopped meanwhile, and remove containers whose task has ended or moved."""
        out: list[pb.ControllerMessage] = []
        mine = set()
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id == host.id and task.status in ACTIVE_ON_HOST:
                mine.add(task.id)
                out.append(self.assignment(task))
                if task.stop_requested:
                    out.append(self.stop_message(task))
        for task_id in container_task_ids:
            if task_id not in mine:
                out.append(pb.ControllerMessage(release=pb.Release(task_id=task_id)))
        return out

    def on_task_event(self, host: HostRecord, event: pb.TaskEvent) -> list[pb.ControllerMessage]:
        task = self.store.get_task(event.task_id)
        if task is None:
            return [pb.ControllerMessage(release=pb.Release(task_id=event.task_id))]
        task, effects = on_report(task, host.id, Report.from_proto(event), self.clock())
        if effects.refusal:
            log.warning("host %s refused task %s: %s", host.name, task.name, effects.refusal)
        if effects.changed:
            self.store.update_task(task)
            log.info("task %s is %s%s", task.name, task.status, f": {task.reason}" if task.reason else "")
        if effects.free_capacity:
            self.release(task.id)
        if effects.publish:
            self.publish_status(task)
        if effects.wake_scheduler:
            self.wake()
        return [pb.ControllerMessage(release=pb.Release(task_id=task.id))] if effects.release_container else []
