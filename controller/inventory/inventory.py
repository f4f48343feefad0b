"""The controller's in-memory picture of its hosts, rebuilt from the store at start.

`generation` is bumped whenever a pending task might fit now (a host came or changed, capacity
was freed, fleets or volumes changed): the scheduler skips passes with nothing new, because each
task that fits nowhere costs a look at every host."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.configs.fleet import FleetConfiguration
from controller.configs.volume import VolumeConfiguration
from controller.inventory.ledger import Share, UsageLedger
from controller.inventory.views import host_facts, host_view
from controller.placement import HostIndex, HostView
from controller.scheduling.host_loss import LossSettings, LostHost, clock_text, lost_hosts
from controller.scheduling.requirements import AppliedVolume
from controller.store import StorageError, Store
from controller.store.records import ConfigRecord, HostRecord, TaskRecord

LIVENESS_CHECK_S = 1.0

log = logging.getLogger("dstack.controller")


class Connected(Protocol):
    last_seen: float


class ConnectedAgents(Protocol):
    """The agents' open streams (the server's Sessions): all liveness needs of them."""

    def get(self, host_id: str) -> Connected | None: ...


class Inventory:
    def __init__(
        self,
        store: Store,
        sessions: ConnectedAgents,
        host_grace_s: float,
        clock: Callable[[], float],
        host_lost_after_s: float | None = None,  # None: the grace itself
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.host_grace_s = host_grace_s
        self.clock = clock
        self.loss = LossSettings(host_grace_s, host_lost_after_s or host_grace_s, started_at=clock())
        # When each host last spoke: the stored time (a restart keeps it), raised by the open
        # streams' fresher in-memory time at every liveness check.
        self.last_heard: dict[str, float] = {}
        self.index = HostIndex()
        self.ledger = UsageLedger()
        self.fleets: dict[str, FleetConfiguration] = {}
        self.volumes: dict[str, AppliedVolume] = {}
        self.generation = 0
        # The clouds' interruption notices by host. Kept across the host's reconnects (a new stream
        # must not open a window in which the host takes tasks again) until its agent says otherwise:
        # a watching agent states its notice, or that it has none, on every stream after one poll.
        self.notices: dict[str, pb.HostNotice] = {}
        # Told when a host goes offline, with the ids of its tasks (the controller notes it in their history).
        self.on_offline: Callable[[str, list[str]], None] | None = None
        self._liveness_checked_at = 0.0
        self._zones: tuple[int, set[str]] = (-1, set())

    def load(self, share_of: Callable[[TaskRecord], Share | None]) -> None:
        """Builds the index from the store (at start, so a restart loses nothing); `share_of`
        says what a placed task holds (None: it cannot be read back, so it holds nothing)."""
        self.reload_configs(refresh=False)
        for host in self.store.list_hosts():
            self.refresh_host(host)
        for task in self.store.list_tasks(include_finished=False):
            if task.host_id and task.status.active_on_host:
                share = share_of(task)
                if share is not None:
                    self.reserve(task.id, task.host_id, share)

    def reload_configs(self, refresh: bool = True) -> None:
        self.fleets = {
            record.name: FleetConfiguration.model_validate_json(record.configuration_json)
            for record in self.store.list_configs("fleet")
        }
        self.volumes = {
            record.name: _applied_volume(record)
            for record in self.store.list_configs("volume")
        }
        self.generation += 1
        if refresh:
            for host in self.store.list_hosts():
                self.refresh_host(host)

    # ----------------------------------------------------------------- hosts
    def host_name(self, host_id: str) -> str:
        view = self.index.get(host_id) if host_id else None
        if view is not None:
            return view.name
        host = self.store.get_host(host_id) if host_id else None
        return host.name if host else ""

    def is_live(self, host_id: str, now: float) -> bool:
        session = self.sessions.get(host_id)
        return session is not None and now - session.last_seen <= self.host_grace_s

    def refresh_host(self, host: HostRecord) -> HostView:
        """Re-derives one host's view (facts, fleet, liveness) with what its tasks hold."""
        self._heard(host.id, host.last_seen)
        fleet = self.fleets.get(host.fleet)
        notice = self.notices.get(host.id)
        view = host_view(
            host,
            host_facts(host),
            self.is_live(host.id, self.clock()),
            frozenset(r.lower() for r in fleet.regions) or None if fleet else None,
            frozenset(fleet.availability_zones) or None if fleet else None,
            notice=notice.text if notice is not None else "",
        )
        return self._put(_with_usage(view, self.ledger.on_host(host.id)))

    def set_notice(self, host: HostRecord, notice: pb.HostNotice | None) -> str:
        """Records (None: withdraws) a host's interruption notice; returns the text it had before."""
        before = self.notices.pop(host.id, None)
        if notice is not None:
            self.notices[host.id] = notice
        self.refresh_host(host)
        return before.text if before is not None else ""

    def forget_host(self, host_id: str) -> None:
        self.notices.pop(host_id, None)
        self.index.remove(host_id)
        self.last_heard.pop(host_id, None)
        self.ledger.forget_host(host_id)
        self.generation += 1

    def refresh_liveness(self) -> None:
        """Hosts go offline by the clock, not by an event: re-check them all, at most once a
        second (connects and disconnects refresh their own host at once; this finds the silent)."""
        now = self.clock()
        if now - self._liveness_checked_at < LIVENESS_CHECK_S:
            return
        self._liveness_checked_at = now
        for view in list(self.index.hosts()):
            session = self.sessions.get(view.id)
            if session is not None:
                self._heard(view.id, session.last_seen)
            if view.live != self.is_live(view.id, now):
                self._put(dataclasses.replace(view, live=not view.live))

    def lost_hosts(self, now: float) -> list[LostHost]:
        """The offline hosts silent past --host-lost-after (their tasks must end)."""
        return lost_hosts(self.index.hosts(), self.last_heard, now, self.loss)

    def tasks_on(self, host_id: str) -> list[str]:
        """The ids of the tasks holding a share of this host."""
        return self.ledger.tasks_on(host_id)

    def _heard(self, host_id: str, at: float) -> None:
        if at > self.last_heard.get(host_id, 0.0):
            self.last_heard[host_id] = at

    def _went_offline(self, view: HostView) -> None:
        """Said at WARNING with the tasks it holds and when they end, so an operator sees it coming."""
        last = self.last_heard.get(view.id, 0.0)
        try:
            names = sorted(t.name for t in map(self.store.get_task, self.tasks_on(view.id)) if t is not None)
        except StorageError:  # the store said it once; the ids still name them
            names = self.tasks_on(view.id)
        log.warning(
            "host %s is offline (last heard %s UTC)%s",
            view.name,
            clock_text(last),
            f"; its tasks {', '.join(names)} end as lost at {clock_text(self.loss.deadline(last))} UTC "
            "unless it returns"
            if names
            else "",
        )

    def known_zones(self) -> set[str]:
        """Zones of hosts, fleets and volumes: what a task may name (the clouds' add to these)."""
        if self._zones[0] != self.generation:
            zones = {v.zone for v in self.index.hosts() if v.zone}
            zones |= {z for f in self.fleets.values() for z in f.availability_zones}
            zones |= {v.config.availability_zone for v in self.volumes.values() if v.config.availability_zone}
            self._zones = (self.generation, zones)
        return self._zones[1]

    # ----------------------------------------------------------------- usage
    def reserve(self, task_id: str, host_id: str, share: Share) -> None:
        if self.ledger.reserve(task_id, host_id, share):
            self._mirror_usage(host_id)

    def release(self, task_id: str) -> None:
        host_id = self.ledger.release(task_id)
        if host_id is not None:
            self._mirror_usage(host_id)
            self.generation += 1  # capacity freed: a pending task may fit now

    def _mirror_usage(self, host_id: str) -> None:
        view = self.index.get(host_id)
        if view is not None:
            self._put(_with_usage(view, self.ledger.on_host(host_id)), bump=False)

    def _put(self, view: HostView, bump: bool = True) -> HostView:
        old = self.index.get(view.id)
        if old != view:
            self.index.upsert(view)
            if old is not None and old.live and not view.live:
                self._went_offline(view)
                if self.on_offline is not None:
                    self.on_offline(view.name, self.tasks_on(view.id))
            if bump:
                self.generation += 1
        return view


def _applied_volume(record: ConfigRecord) -> AppliedVolume:
    return AppliedVolume(VolumeConfiguration.model_validate_json(record.configuration_json), record.status)


def _with_usage(view: HostView, share: Share) -> HostView:
    return dataclasses.replace(view, cpu_used=share.cpu, memory_used_bytes=share.memory_bytes, gpus_used=share.gpus)
