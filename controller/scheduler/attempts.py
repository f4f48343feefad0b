"""A retried task's next attempt, written down: the marker line between the attempts' logs, where
the new attempt's lines start in the stored log, then the task itself. Shared by every path that
retries (a report, a lost host), so the log reads the same whichever it was."""

from __future__ import annotations

import time
from collections.abc import Callable

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.store import Store
from controller.store.records import StoredLogLine, TaskRecord


def begin_attempt(
    store: Store, save: Callable[[TaskRecord], None], task: TaskRecord, marker: str
) -> tuple[TaskRecord, StoredLogLine]:
    """Stores `task` (already the next attempt) with `save` (the journal's update, so its history
    says it was retried) after its marker line; returns it and the line.

    The marker goes first: a controller killed between the two writes finds the task still on its
    old attempt and retries it again, at worst with a second marker line, never without one."""
    counts = store.log_counts(task.id)
    line = StoredLogLine(
        pb.LOG_STREAM_STDOUT, counts.get(pb.LOG_STREAM_STDOUT, 0), time.time_ns(), f"{marker}\n".encode()
    )
    store.append_logs(task.id, [line])
    task.stdout_base = line.seq + 1
    task.stderr_base = counts.get(pb.LOG_STREAM_STDERR, 0)
    save(task)
    return task, line
