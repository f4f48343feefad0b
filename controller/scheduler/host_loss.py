"""Ends the tasks of lost hosts: the I/O around the pure decision (controller/scheduling/host_loss.py)
and transition (lifecycle.on_host_lost). Run by the scheduler loop before each pass, so the
capacity it frees is placed in the same pass.

Idempotent and keyed by the store: a host's tasks are ended once per loss; a controller restarted
in the middle finds the rest still active and ends them on its first check."""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.inventory.inventory import Inventory
from controller.scheduler.journal import TaskJournal
from controller.scheduling.host_loss import LostHost, clock_text
from controller.scheduling.lifecycle import Effects, on_host_lost
from controller.store import Store
from controller.store.records import TaskRecord

log = logging.getLogger("dstack.controller")

CHECK_S = 1.0  # hosts are lost by the clock: once a second is soon enough, and cheap at thousands


class HostLoss:
    def __init__(
        self,
        store: Store,
        journal: TaskJournal,
        inventory: Inventory,
        publish: Callable[[TaskRecord], None],
        clock: Callable[[], float],
        store_after: Callable[[TaskRecord, Effects], TaskRecord] | None = None,  # a retry writes its marker too
        # The server releases these (task id, attempt) on the host's stream, if one is still open, and ends it.
        end_stream: Callable[[str, list[tuple[str, int]]], object] | None = None,
    ) -> None:
        self.store, self.journal, self.inventory, self.publish, self.clock = store, journal, inventory, publish, clock
        self.store_after = store_after
        self.end_stream = end_stream
        self._declared: set[str] = set()  # hosts whose tasks were ended, until they come back
        self._checked_at = 0.0

    def check(self) -> None:
        now = self.clock()
        if now - self._checked_at < CHECK_S:
            return
        self._checked_at = now
        lost = self.inventory.lost_hosts(now)
        # A host that came back (or was removed) may be lost again later.
        self._declared &= {h.host_id for h in lost}
        for host in lost:
            if host.host_id not in self._declared:
                replaced = self._end_tasks(host, now)
                self._declared.add(host.host_id)  # only once all its tasks were written
                if self.end_stream is not None:
                    # A silent stream may still be open (a frozen process, a paused VM, a partition
                    # without a reset). What it reads first if it ever wakes: release the attempts
                    # replaced meanwhile (else they run on until they exit by themselves), then the
                    # end of the stream, so it says hello again and lists whatever else it holds.
                    self.end_stream(host.host_id, replaced)

    def _end_tasks(self, host: LostHost, now: float) -> list[tuple[str, int]]:
        """Ends or retries the host's tasks; returns the (task id, attempt) they had there."""
        ended: list[str] = []
        replaced: list[tuple[str, int]] = []
        for task in self.store.list_tasks(include_finished=False):
            after, effects = on_host_lost(task, host.host_id, host.name, host.last_heard, now)
            if effects.changed:
                replaced.append((task.id, task.attempt))
                if self.store_after is not None:
                    after = self.store_after(after, effects)
                else:
                    self.journal.update(after)
                ended.append(after.name if after.terminal else f"{after.name} (retried as attempt {after.attempt})")
            if effects.free_capacity:
                self.inventory.release(after.id)
            if effects.publish:
                self.publish(after)
        if ended:
            log.warning(
                "host %s is lost (last heard %s UTC, %.0fs ago): its tasks %s ended",  # or were retried
                host.name,
                clock_text(host.last_heard),
                now - host.last_heard,
                ", ".join(sorted(ended)),
            )
        else:
            log.info("host %s is lost (last heard %s UTC): it holds no task", host.name, clock_text(host.last_heard))
        return replaced
