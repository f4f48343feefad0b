"""The one place tasks are written: each save stores the task and the events its change makes
(controller/scheduling/task_events.py), so no caller can write a transition and forget its event.

Everything that writes a task goes through here (a unit test holds the line: no other module
calls Store.add_task or Store.update_task)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from controller.scheduling.task_events import HostName, events_between, noted
from controller.store import StorageError, Store
from controller.store.records import TaskHistoryEntry, TaskRecord

log = logging.getLogger("dstack.controller")


class TaskJournal:
    def __init__(self, store: Store, host_name: HostName, clock: Callable[[], float]) -> None:
        self.store, self.host_name, self.clock = store, host_name, clock

    def add(self, task: TaskRecord) -> None:
        """Stores a new task (its submitted event, and where it was placed if it was)."""
        self.store.add_task(task)
        self._record(task.id, events_between(None, task, self.host_name, self.clock()))

    def update(self, task: TaskRecord) -> None:
        """Stores a changed task and the events of its change (read against the stored one)."""
        old = self.store.get_task(task.id)
        self.store.update_task(task)
        if old is not None:
            self._record(task.id, events_between(old, task, self.host_name, self.clock()))

    def note(self, task_ids: Iterable[str], kind: str, message: str, at: float | None = None) -> None:
        """An event the task record does not show (an agent pulling its image, its host offline)."""
        entry = noted(kind, message, self.clock() if at is None else at)
        for task_id in task_ids:
            self._record(task_id, [entry])

    def history(self, task_id: str) -> list[TaskHistoryEntry]:
        return self.store.task_events(task_id)

    def _record(self, task_id: str, entries: list[TaskHistoryEntry]) -> None:
        try:
            self.store.add_task_events(task_id, entries)
        except StorageError:
            # The task itself was written; its history is what an operator reads, not what any
            # decision rests on, so a full disk costs the line, never the transition.
            log.warning("task %s: %d history event(s) not stored: the storage refuses writes", task_id, len(entries))
