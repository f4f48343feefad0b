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

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.images.platforms import PlatformLookup, native_arches
from controller.placement import HostView, Requirements, place
from controller.server import taskspec
from controller.server.convert import host_facts, task_message
from controller.server.events import TaskEvents
from controller.server.sessions import Sessions
from controller.settings import ControllerSettings
from controller.store import Store
from controller.store.records import (
    ACTIVE_ON_HOST,
    DONE,
    FAILED,
    PENDING,
    PROVISIONING,
    RUNNING,
    STOPPED,
    HostRecord,
    TaskRecord,
)
from controller.tls import ServerTLS

log = logging.getLogger("dstack.controller")

SUPPORTED_ARCHES = frozenset({"amd64", "arm64"})


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
        self.tls: ServerTLS | None = None  # None with --insecure
        self.agent_port = 0
        self._wake = asyncio.Event()
        self._schedule_lock = asyncio.Lock()

    # ------------------------------------------------------------------ views
    def host_name(self, host_id: str) -> str:
        host = self.store.get_host(host_id) if host_id else None
        return host.name if host else ""

    def task_message(self, task: TaskRecord) -> pb.Task:
        try:
            resources = taskspec.resources_text(taskspec.parse(task.configuration_json))
        except ValueError:
            resources = ""
        return task_message(task, self.host_name(task.host_id), resources)

    def is_live(self, host: HostRecord, now: float) -> bool:
        session = self.sessions.get(host.id)
        return session is not None and now - session.last_seen <= self.settings.host_grace_s

    def host_views(self, active_tasks: list[TaskRecord], now: float) -> dict[str, HostView]:
        used_cpu: dict[str, float] = {}
        used_mem: dict[str, int] = {}
        for task in active_tasks:
            if task.status in ACTIVE_ON_HOST and task.host_id:
                cpu, mem = taskspec.reservation(taskspec.parse(task.configuration_json))
                used_cpu[task.host_id] = used_cpu.get(task.host_id, 0.0) + cpu
                used_mem[task.host_id] = used_mem.get(task.host_id, 0) + mem
        views = {}
        for host in self.store.list_hosts():
            facts = host_facts(host)
            views[host.id] = HostView(
                id=host.id,
                name=host.name,
                arch=host.arch,
                live=self.is_live(host, now),
                cpu_total=float(facts.cpu.threads or 0),
                memory_total_bytes=facts.memory_bytes,
                cpu_used=used_cpu.get(host.id, 0.0),
                memory_used_bytes=used_mem.get(host.id, 0),
                region=host.region,
                zone=host.zone,
            )
        return views

    # ------------------------------------------------------------- scheduling
    def wake(self) -> None:
        self._wake.set()

    async def run_scheduler(self) -> None:
        """Reconciler loop: place pending tasks on every change, and every few seconds
        (hosts go offline by the clock, not by an event)."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            self._wake.clear()
            try:
                await self.schedule_pending()
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")

    async def requirements(self, task: TaskRecord) -> Requirements:
        config = taskspec.parse(task.configuration_json)
        cpu, memory = taskspec.reservation(config)
        excluded = frozenset(task.refused_hosts)
        explicit = taskspec.explicit_arch(config)
        if explicit:
            return Requirements(frozenset({explicit}), "resources.cpu", cpu, memory, excluded)
        if task.arch:
            return Requirements(frozenset({task.arch}), "refusal", cpu, memory, excluded)
        platforms = await asyncio.to_thread(self.lookup.platforms, task.image)
        if platforms is not None:
            return Requirements(native_arches(platforms) & SUPPORTED_ARCHES, "image", cpu, memory, excluded)
        return Requirements(None, "", cpu, memory, excluded)

    async def schedule_pending(self) -> None:
        async with self._schedule_lock:
            active = self.store.list_tasks(include_finished=False)
            pending = [t for t in active if t.status == PENDING]
            if not pending:
                return
            now = self.clock()
            views = self.host_views(active, now)
            for task in pending:
                req = await self.requirements(task)
                decision = place(req, views.values())
                if decision.chosen is None:
                    reason = f"{task.refusal} ({decision.reason})" if task.refusal else decision.reason
                    if task.reason != reason:
                        task.reason = reason
                        self.store.update_task(task)
                        self.publish_status(task)
                        log.info("task %s pending: %s", task.name, reason)
                    continue
                host = decision.chosen
                task.status, task.host_id, task.reason = PROVISIONING, host.id, ""
                self.store.update_task(task)
                views[host.id] = dataclasses.replace(
                    host,
                    cpu_used=host.cpu_used + req.cpu,
                    memory_used_bytes=host.memory_used_bytes + req.memory_bytes,
                )
                log.info("task %s placed on %s", task.name, host.name)
                self.publish_status(task)
                self.sessions.send(host.id, self.assignment(task))

    def assignment(self, task: TaskRecord) -> pb.ControllerMessage:
        counts = self.store.log_counts(task.id)
        config = taskspec.parse(task.configuration_json)
        return pb.ControllerMessage(
            assign=pb.Assignment(
                task_id=task.id,
                task_name=task.name,
                run=taskspec.run_spec(config),
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
        if task is None or task.host_id != host.id or task.terminal:
            # Not this host's (any more): the container, if there is one, can go.
            return [pb.ControllerMessage(release=pb.Release(task_id=event.task_id))]
        now = event.at_ms / 1000 if event.at_ms else self.clock()
        release = False
        publish = True
        if event.kind == pb.TASK_EVENT_KIND_STARTED:
            if task.status != RUNNING:
                task.status, task.reason = RUNNING, ""
                task.started_at = task.started_at or now
        elif event.kind == pb.TASK_EVENT_KIND_EXITED:
            task.exit_code = event.exit_code
            task.finished_at = now
            if task.stop_requested:
                task.status, task.reason = STOPPED, "stopped by user"
            elif event.exit_code == 0:
                task.status, task.reason = DONE, ""
            else:
                task.status, task.reason = FAILED, f"exited with code {event.exit_code}"
            release = True
        elif event.kind == pb.TASK_EVENT_KIND_REFUSED:
            log.warning("host %s refused task %s: %s", host.name, task.name, event.reason)
            task.refused_hosts = sorted({*task.refused_hosts, host.id})
            task.refusal = event.reason
            platform_arch = event.image_platform.split("/")[1] if "/" in event.image_platform else ""
            if platform_arch in SUPPORTED_ARCHES:
                task.arch = platform_arch  # never place it on this arch again: no retry loop
            task.host_id = ""
            if task.stop_requested:
                task.status, task.reason, task.finished_at = STOPPED, "stopped by user", now
            else:
                # Back to pending; the scheduler publishes where it went, or why nowhere, so a
                # follower never mistakes this moment for the final word.
                task.status, task.reason = PENDING, event.reason
                publish = False
                self.wake()
        elif event.kind in (pb.TASK_EVENT_KIND_FAILED_TO_START, pb.TASK_EVENT_KIND_LOST):
            task.status, task.reason, task.finished_at = FAILED, event.reason, now
            release = True
        else:
            return []
        self.store.update_task(task)
        if publish:
            self.publish_status(task)
        log.info("task %s is %s%s", task.name, task.status, f": {task.reason}" if task.reason else "")
        if task.terminal:
            self.wake()  # resources freed
        return [pb.ControllerMessage(release=pb.Release(task_id=task.id))] if release else []
