"""The controller, wired in one place: the inventory (hosts, index, usage ledger, fleets and
volumes), the scheduler, the task lifecycle and the agents' sessions. Services hold this object
and reach the parts through it.

Everything is re-derived from the store, so a restart in the middle is harmless: pending
tasks are placed again, and agents re-announce their containers when they reconnect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.backends.model import BackendError
from controller.configs.fleet import FleetConfiguration
from controller.configs.task import TaskConfiguration
from controller.images.platforms import PlatformLookup
from controller.inventory.inventory import Inventory
from controller.inventory.views import host_facts
from controller.placement import HostIndex, HostView, Requirements
from controller.placement.model import Decision
from controller.scheduler.attempts import begin_attempt
from controller.scheduler.journal import TaskJournal
from controller.scheduler.scheduler import Scheduler
from controller.scheduling import task_events, taskspec
from controller.scheduling.lifecycle import Effects, Report, attempt_of, on_interrupted, on_report
from controller.scheduling.requirements import AppliedVolume
from controller.server import assignments
from controller.server.convert import log_line, task_message
from controller.server.events import TaskEvents
from controller.server.sessions import Sessions
from controller.settings import ControllerSettings
from controller.statuses import TaskStatus
from controller.store import Store
from controller.store.records import AttachmentRecord, HostRecord, TaskRecord
from controller.tls import ServerTLS, load_ca

if TYPE_CHECKING:
    from controller.provisioning.reconciler import Burster

log = logging.getLogger("dstack.controller")


class Controller:
    """Also the burst reconciler's ControllerPort (controller/provisioning/port.py): fleets, host_facts,
    task_requirements, host_fits, remove_host, publish_status, wake, ca_fingerprint."""

    def __init__(
        self,
        settings: ControllerSettings,
        store: Store,
        lookup: PlatformLookup,
        clock: Callable[[], float] = time.time,
        tls: ServerTLS | None = None,  # None with --insecure
        agent_port: int = 0,  # where agents open their stream (told to them at registration)
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sessions = Sessions()
        self.events = TaskEvents()
        self.inventory = Inventory(store, self.sessions, settings.host_grace_s, clock, settings.host_lost_after_s)
        # Every task write goes through the journal, which keeps the task's event history.
        self.journal = TaskJournal(store, self.host_name, clock)
        self.inventory.on_offline = self._host_offline
        self.scheduler = Scheduler(
            store,
            self.journal,
            self.inventory,
            lookup,
            clock,
            self.publish_status,
            self._placed,
            self.store_task_after,
            self._end_stream,
        )
        self.tls = tls
        self.agent_port = agent_port
        self.burst: Burster | None = None  # set when the config file configures backends
        self._ca_fingerprint = ""
        self._attaching: set[asyncio.Task[None]] = set()

    # What the services read most; the inventory owns them.
    @property
    def index(self) -> HostIndex:
        return self.inventory.index

    @property
    def fleets(self) -> dict[str, FleetConfiguration]:
        return self.inventory.fleets

    @property
    def volumes(self) -> dict[str, AppliedVolume]:
        return self.inventory.volumes

    def set_burst(self, burst: Burster) -> None:
        self.burst = burst
        self.scheduler.also_wake = burst.wake

    # ------------------------------------------------------------------ views
    def host_name(self, host_id: str) -> str:
        return self.inventory.host_name(host_id)

    def task_message(self, task: TaskRecord) -> pb.Task:
        try:
            config = taskspec.parse(task.configuration_json)
        except ValueError:
            return task_message(task, self.host_name(task.host_id))
        retry = str(config.retry) if config.retry is not None else ""
        return task_message(task, self.host_name(task.host_id), taskspec.resources_text(config), retry)

    def host_facts(self, host: HostRecord) -> pb.HostFacts:
        return host_facts(host)

    def ca_fingerprint(self) -> str:
        """What join tokens pin; the CA exists with --insecure too (tokens keep one format)."""
        if not self._ca_fingerprint:
            ca = self.tls.ca if self.tls else load_ca(self.settings.data_dir)[0]
            self._ca_fingerprint = ca.fingerprint
        return self._ca_fingerprint

    def zones_to_check(self) -> set[str] | None:
        """The zones a task may name, or None when they cannot be known yet (a bursting controller
        that has not read its clouds' offerings: any zone there may be real)."""
        if self.burst is not None and self.burst.enabled and not self.burst.known_zones:
            return None
        zones = self.inventory.known_zones()
        # The clouds' zones change without a generation bump: added outside the cached set.
        return zones | self.burst.known_zones if self.burst is not None else set(zones)

    def policy_hosts(self) -> list[HostView]:
        """The hosts whose policies decide whether a task could ever run: every registered one,
        and, when bursting, an instance it would launch (its agent.yaml sets no policy: the default).
        None registered: nothing to decide by, and the task waits for a host as any task does."""
        hosts = self.index.hosts()
        if hosts and self.burst is not None and self.burst.enabled:
            hosts.append(HostView(id="", name="(a launched cloud instance)", arch="", live=True, cpu_total=0,
                                  memory_total_bytes=0))  # fmt: skip
        return hosts

    # ------------------------------------------------------------- hosts
    def load(self) -> None:
        self.inventory.load(self.scheduler.share_of)

    def reload_configs(self) -> None:
        self.inventory.reload_configs()

    def refresh_host(self, host: HostRecord) -> HostView:
        return self.inventory.refresh_host(host)

    def forget_host(self, host_id: str) -> None:
        self.inventory.forget_host(host_id)

    def release(self, task_id: str) -> None:
        self.inventory.release(task_id)

    def is_live(self, host_id: str, now: float) -> bool:
        return self.inventory.is_live(host_id, now)

    def remove_host(self, host_id: str, reason: str) -> HostRecord | None:
        """Forgets a host: its active tasks fail with `reason`, its certificate stops connecting."""
        host = self.store.get_host(host_id)
        if host is None:
            return None
        now = self.clock()
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id == host.id:
                task.status, task.reason, task.finished_at = TaskStatus.FAILED, reason, now
                self.journal.update(task)
                self.release(task.id)
                self.publish_status(task)
        # Deleting the record revokes its certificate: the next handshake names a host that is gone.
        self.store.delete_host(host.id)
        self.store.delete_attachments(host_id=host.id)  # its instance, and so its disks' places, are gone
        self.forget_host(host.id)
        session = self.sessions.get(host.id)
        if session is not None:
            session.close()
        log.info("host %s (%s) removed: %s", host.name, host.id, reason)
        return host

    # ------------------------------------------------------------- scheduling
    def wake(self) -> None:
        self.scheduler.wake()

    async def run_scheduler(self) -> None:
        await self.scheduler.run()

    def probe_task(self, config: TaskConfiguration, configuration_json: str) -> TaskRecord:
        """A task that is never stored: what `offers` asks placement about."""
        return TaskRecord(
            id="offers",
            name=config.name or "offers",
            configuration_json=configuration_json,
            image=config.image,
            submitted_at=self.clock(),
        )

    async def task_requirements(self, task: TaskRecord) -> Requirements:
        return await self.scheduler.task_requirements(task)

    def host_fits(self, req: Requirements) -> bool:
        return self.index.place(req).chosen is not None

    async def place_new(self, task: TaskRecord) -> TaskRecord:
        return await self.scheduler.place_new(task)

    def _placed(self, task: TaskRecord, decision: Decision) -> None:
        assert decision.chosen is not None
        host_id = decision.chosen.id
        cloud_volumes = [v for v in decision.volumes if v.backend != "local"]
        if cloud_volumes:
            # The cloud attaches the volume first (seconds); the assignment then names the device.
            attaching = asyncio.ensure_future(self._attach_then_assign(task, host_id, [v.name for v in cloud_volumes]))
            self._attaching.add(attaching)
            attaching.add_done_callback(self._attaching.discard)
        else:
            self.sessions.send(host_id, self.assignment(task))

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
                fresh.status, fresh.reason, fresh.finished_at = (
                    TaskStatus.FAILED,
                    f"attaching volume {name}: {exc}",
                    self.clock(),
                )
                self.journal.update(fresh)
                self.release(fresh.id)
                self.publish_status(fresh)
                log.warning("task %s failed: %s", fresh.name, fresh.reason)
                return
        current = self.store.get_task(task.id)
        if current is not None and current.host_id == host_id and current.status.active_on_host:
            self.sessions.send(host_id, self.assignment(current))

    # ------------------------------------------------------- messages to agents
    def mounts_for(self, config: TaskConfiguration, host_id: str) -> list[pb.Mount]:
        view = self.index.get(host_id)
        return assignments.mounts_for(config, host_id, view, self.volumes, self._attachment)

    def _attachment(self, volume_name: str, host_id: str) -> AttachmentRecord | None:
        # From the store, not the burst reconciler's memory: a restarted controller still knows the LUN.
        return self.store.get_attachment(volume_name, host_id)

    def assignment(self, task: TaskRecord) -> pb.ControllerMessage:
        config = taskspec.parse(task.configuration_json)
        mounts = self.mounts_for(config, task.host_id)
        return assignments.assignment(task, self.store.log_counts(task.id), mounts)

    def stop_message(self, task: TaskRecord) -> pb.ControllerMessage:
        return assignments.stop_message(task, self.settings.stop_grace_s)

    def save_task(self, task: TaskRecord) -> None:
        self.journal.update(task)

    def _host_offline(self, host_name: str, task_ids: list[str]) -> None:
        self.journal.note(task_ids, task_events.HOST_OFFLINE, f"host {host_name} offline")

    def _end_stream(self, host_id: str, replaced: list[tuple[str, int]]) -> None:
        """A lost host's stream, if one is still open: the attempts that were replaced are released
        on it, then it ends, so the agent, when it wakes, stops them at once and says hello again
        (on_hello releases whatever else it holds that is not current)."""
        session = self.sessions.get(host_id)
        if session is not None:
            log.info("host %s is lost with its stream still open: %d attempts released, the stream ended",
                     self.host_name(host_id), len(replaced))  # fmt: skip
            for task_id, attempt in replaced:
                session.send(release(task_id, attempt))
            session.close()

    def publish_status(self, task: TaskRecord) -> None:
        self.events.publish(task.id, pb.LogEvent(status=self.task_message(task)))

    def store_task_after(self, task: TaskRecord, effects: Effects) -> TaskRecord:
        """Stores a task a transition changed; a retried one with its marker line first, which
        followers see as they see any line."""
        if not effects.marker:
            self.journal.update(task)
            return task
        task, line = begin_attempt(self.store, self.journal.update, task, effects.marker)
        self.events.publish(task.id, pb.LogEvent(line=log_line(line)))
        log.info("task %s is retried as attempt %d: %s", task.name, task.attempt, task.reason)
        return task

    # ------------------------------------------------------- agent reports
    def on_hello(self, host: HostRecord, containers: list[tuple[str, int]]) -> list[pb.ControllerMessage]:
        """What a (re)connected agent must do: re-adopt or start its tasks, stop what was stopped
        meanwhile, and remove containers whose task has ended or moved, or whose attempt is not
        the current one (the host was declared lost and the task retried elsewhere)."""
        out: list[pb.ControllerMessage] = []
        mine: set[tuple[str, int]] = set()
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id == host.id and task.status.active_on_host:
                mine.add((task.id, task.attempt))
                out.append(self.assignment(task))
                if task.stop_requested:
                    out.append(self.stop_message(task))
        for task_id, attempt in containers:
            if (task_id, attempt_of(attempt)) not in mine:
                out.append(release(task_id, attempt))
        return out

    def on_task_event(self, host: HostRecord, event: pb.TaskEvent) -> list[pb.ControllerMessage]:
        if event.kind == pb.TASK_EVENT_KIND_SUPERSEDED:
            # The agent did what a Release asked of a stale attempt: nothing to record, nothing to answer.
            log.info("host %s removed attempt %d of task %s: superseded", host.name, attempt_of(event.attempt),
                     event.task_id)  # fmt: skip
            return []
        task = self.store.get_task(event.task_id)
        if task is None:
            return [release(event.task_id, event.attempt)]
        if event.kind == pb.TASK_EVENT_KIND_PULLING:
            # A history line only: the status stays provisioning.
            current = task.host_id == host.id and task.attempt == attempt_of(event.attempt)
            if current and not task.terminal:
                self.journal.note([task.id], task_events.PULLING, f"pulling {task.image}", Report.from_proto(event).at)
            return []
        task, effects = on_report(task, host.id, Report.from_proto(event), self.clock())
        if effects.refusal:
            log.warning("host %s refused task %s: %s", host.name, task.name, effects.refusal)
        if effects.changed:
            task = self.store_task_after(task, effects)
            log.info("task %s is %s%s", task.name, task.status, f": {task.reason}" if task.reason else "")
        if effects.free_capacity:
            self.release(task.id)
        if effects.publish:
            self.publish_status(task)
        if effects.wake_scheduler:
            self.wake()
        # The report's attempt, not the task's: a retried task's current attempt is a new one.
        return [release(task.id, event.attempt)] if effects.release_container else []

    def on_notice(self, host: HostRecord, notice: pb.HostNotice) -> list[pb.ControllerMessage]:
        """The host's cloud announced an interruption (or withdrew it: an empty kind). The host gets
        no new task while the notice stands, and its tasks end now (or are retried elsewhere, as
        `retry: on_events: [interruption]` asks), their containers released."""
        before = self.inventory.set_notice(host, notice if notice.kind else None)
        self.wake()
        if not notice.kind:
            if before:
                log.warning("host %s: its interruption notice (%s) was withdrawn; it takes tasks again", host.name,
                            before)  # fmt: skip
            return []
        now = self.clock()
        ended: list[str] = []
        out: list[pb.ControllerMessage] = []
        for task in self.store.list_tasks(include_finished=False):
            attempt = task.attempt  # the container to release is this attempt's, whatever comes next
            after, effects = on_interrupted(task, host.id, notice.text, now)
            if effects.changed:
                after = self.store_task_after(after, effects)
                ended.append(after.name if after.terminal else f"{after.name} (retried as attempt {after.attempt})")
            if effects.free_capacity:
                self.release(after.id)
            if effects.publish:
                self.publish_status(after)
            if effects.release_container:
                out.append(release(after.id, attempt))
        if ended:
            log.warning("host %s has an interruption notice (%s): its tasks %s end as interrupted", host.name,
                        notice.text, ", ".join(sorted(ended)))  # fmt: skip
        elif notice.text != before:
            log.warning("host %s has an interruption notice (%s): it gets no new task", host.name, notice.text)
        return out


def release(task_id: str, attempt: int) -> pb.ControllerMessage:
    return pb.ControllerMessage(release=pb.Release(task_id=task_id, attempt=attempt_of(attempt)))
