"""Log retention: a finished task's log is deleted once it ended longer ago than --log-retention.

A periodic job, each store call in a thread and each delete a short batch, so a purge of big logs
neither stalls the event loop nor holds the store's lock for long. SQLite reuses the freed pages
for new lines, so the database file stops growing rather than shrinking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from controller.store import Store

log = logging.getLogger("dstack.controller.logs")

DELETE_BATCH = 5000


def purge_interval(retention_s: float) -> float:
    """How often to look: a quarter of the retention, between 1 s and 10 min."""
    return min(600.0, max(1.0, retention_s / 4))


def purge_once(store: Store, retention_s: float, now: float) -> int:
    """Deletes the logs of tasks that ended before now - retention; returns how many tasks (blocking)."""
    purged = 0
    for task_id in store.tasks_with_logs_ended_before(now - retention_s):
        while store.delete_logs(task_id, DELETE_BATCH) >= DELETE_BATCH:
            pass
        purged += 1
    return purged


async def purge_forever(store: Store, retention_s: float, clock: Callable[[], float] = time.time) -> None:
    interval = purge_interval(retention_s)
    while True:
        try:
            purged = await asyncio.to_thread(purge_once, store, retention_s, clock())
            if purged:
                log.info("deleted the logs of %d task(s) that ended over the log retention ago", purged)
        except Exception:  # a failing disk is reported by the store; the next round tries again
            log.exception("purging old task logs failed")
        await asyncio.sleep(interval)
