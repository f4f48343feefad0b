"""The scheduling loop: each pass tries every pending task against the inventory's index.

Everything is re-derived from the store, so a restart in the middle is harmless: pending tasks
are placed again on the next pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from controller.configs.retry import duration_text
from controller.images.platforms import PlatformLookup, native_arches
from controller.inventory.inventory import Inventory
from controller.inventory.ledger import Share
from controller.placement import Requirements
from controller.placement.model import Decision
from controller.scheduler.host_loss import HostLoss
from controller.scheduler.journal import TaskJournal
from controller.scheduling import taskspec
from controller.scheduling.lifecycle import SUPPORTED_ARCHES, Effects
from controller.scheduling.requirements import SubmitError, requirements
from controller.scheduling.retry import window_end
from controller.statuses import TaskStatus
from controller.store import StorageError, Store
from controller.store.records import TaskRecord

log = logging.getLogger("dstack.controller")

PASS_TIMEOUT_S = 5.0  # a pass even without a wake-up: hosts go offline by the clock
FULL_PASS_S = 60.0  # every pending task is tried once a minute whatever changed

Placed = Callable[[TaskRecord, Decision], None]
Publish = Callable[[TaskRecord], None]
StoreAfter = Callable[[TaskRecord, Effects], TaskRecord]


class Scheduler:
    def __init__(
        self,
        store: Store,
        journal: TaskJournal,  # where placed and pending tasks are written
        inventory: Inventory,
        lookup: PlatformLookup,
        clock: Callable[[], float],
        publish: Publish,
        placed: Placed,  # sends the assignment (or attaches its cloud volumes first)
        store_after: StoreAfter | None = None,  # stores a transition's task (a retry with its log marker)
        end_stream: Callable[[str, list[tuple[str, int]]], object] | None = None,  # a lost host's: see HostLoss
    ) -> None:
        self.store, self.journal, self.inventory, self.lookup, self.clock = store, journal, inventory, lookup, clock
        self.publish, self.placed = publish, placed
        self.also_wake: Callable[[], None] | None = None  # the burst reconciler, when there is one
        self.host_loss = HostLoss(store, journal, inventory, publish, clock, store_after, end_stream)
        self._wake = asyncio.Event()
        self._in_pass = False
        self._passes = 0  # passes completed: what `settled` waits on
        self._pass_done = asyncio.Event()
        self._lock = asyncio.Lock()
        self._scheduled_generation = -1
        self._full_pass_at = 0.0
        # What requirements missed for, until the generation changes (reservations only shrink what
        # is free): explaining a miss looks at every host.
        self._unfit: dict[Requirements, str] = {}
        self._unfit_generation = -1

    def wake(self) -> None:
        self._wake.set()
        if self.also_wake is not None:
            self.also_wake()

    async def run(self) -> None:
        """Reconciler loop: place pending tasks on every change, and every few seconds."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=PASS_TIMEOUT_S)
            self._wake.clear()
            self._in_pass = True
            try:
                self.inventory.refresh_liveness()
                self.host_loss.check()  # before the pass: what lost hosts held is placed in it
                await self.schedule_pending()
            except StorageError:
                # The store said it once; the pass runs again when woken or in 5 s, and places
                # what it could not write now once space returns.
                self._scheduled_generation = -1
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")
            finally:
                self._in_pass = False
                self._passes += 1
                self._pass_done.set()
                self._pass_done = asyncio.Event()

    async def settled(self, timeout_s: float) -> None:
        """Returns once the pass that is due or running now has completed (at most `timeout_s`): a
        task that just went back to pending (a refusal, a retry) is then placed, or has its reason
        why not. A follower's first look must not take that moment for the final word."""
        target = self._passes + (1 if self._in_pass else 0) + (1 if self._wake.is_set() else 0)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._passes < target:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._pass_done.wait(), timeout=left)

    # ------------------------------------------------------------ requirements
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
        return requirements(
            config, arches, source, frozenset(task.refused_hosts), self.inventory.volumes, platforms
        )

    async def task_requirements(self, task: TaskRecord) -> Requirements:
        """Adds what the registry says about the image when the task names no arch."""
        config = taskspec.parse(task.configuration_json)
        if taskspec.explicit_arch(config) or task.arch:
            return self.static_requirements(task)
        platforms = await asyncio.to_thread(self.lookup.platforms, task.image)
        if platforms is None:
            return self.static_requirements(task)
        return self.static_requirements(task, native_arches(platforms) & SUPPORTED_ARCHES, "image", platforms)

    def share_of(self, task: TaskRecord) -> Share | None:
        """What a placed task holds, read back from its stored configuration (at start)."""
        try:
            req = self.static_requirements(task)
        except (ValueError, SubmitError):
            return None
        return Share(req.cpu, req.memory_bytes, req.gpu.count_min if req.gpu else 0)

    # ------------------------------------------------------------------ passes
    async def schedule_pending(self) -> None:
        async with self._lock:
            now = self.clock()
            generation = self.inventory.generation
            if generation == self._scheduled_generation and now - self._full_pass_at < FULL_PASS_S:
                # Nothing changed since the last pass: every pending task would fail again. Once a
                # minute they are tried anyway, for what no event reports (a registry back online).
                return
            self._scheduled_generation, self._full_pass_at = generation, now
            for task in self.store.list_tasks(include_finished=False):
                if task.status == TaskStatus.PENDING:
                    await self._try_place(task)

    async def place_new(self, task: TaskRecord) -> TaskRecord:
        """Stores a just-submitted task after one placement attempt, so the reply already says
        where or why not, and the task is written once, not twice."""
        async with self._lock:
            await self._try_place(task, stored=False)
        return task

    async def _try_place(self, task: TaskRecord, stored: bool = True) -> None:
        try:
            req = await self.task_requirements(task)
        except SubmitError as exc:  # e.g. a volume deleted since the submit
            self.set_pending_reason(task, str(exc), stored)
            return
        generation = self.inventory.generation
        unfit = self._unfit.get(req) if self._unfit_generation == generation else None
        if unfit is None:
            decision = self.inventory.index.place(req)
        if unfit is not None or decision.chosen is None:
            if unfit is None:
                if self._unfit_generation != generation:
                    self._unfit, self._unfit_generation = {}, generation
                unfit = self._unfit[req] = decision.reason
            reason = f"{task.refusal} ({unfit})" if task.refusal else unfit
            if stored and self._retry_window_over(task, reason):
                return
            self.set_pending_reason(task, reason, stored)
            return
        host = decision.chosen
        # Placed: neither placement's why-not nor bursting's word applies any more.
        task.status, task.host_id, task.reason, task.provisioning_reason = TaskStatus.PROVISIONING, host.id, "", ""
        if stored:
            self.journal.update(task)
        else:
            self.journal.add(task)
        self.inventory.reserve(task.id, host.id, Share(req.cpu, req.memory_bytes, decision.gpus))
        log.info("task %s placed on %s", task.name, host.name)
        self.publish(task)
        self.placed(task, decision)

    def _retry_window_over(self, task: TaskRecord, reason: str) -> bool:
        """A task whose retry policy bounds its wait for a place (a retried attempt, or `no-capacity`)
        ends `failed` once that time is up, as dstack ends it with "retry limit exceeded"."""
        policy = taskspec.parse(task.configuration_json).retry
        end = window_end(policy, task.retry_since, task.submitted_at)
        now = self.clock()
        if policy is None or end is None or now <= end:
            return False
        task.status, task.finished_at = TaskStatus.FAILED, now
        task.reason = f"{reason}; no place within the retry duration {duration_text(policy.duration)}"
        self.journal.update(task)
        self.publish(task)
        log.info("task %s failed: %s", task.name, task.reason)
        return True

    def set_pending_reason(self, task: TaskRecord, reason: str, stored: bool = True) -> None:
        """Placement's why-not only: what bursting says is the task's provisioning_reason, its own."""
        if not stored:
            task.reason = reason
            self.journal.add(task)
            log.info("task %s pending: %s", task.name, reason)
        elif task.reason != reason:
            task.reason = reason
            self.journal.update(task)
            self.publish(task)
            log.info("task %s pending: %s", task.name, reason)
