"""In-process fan-out of a task's new log lines and status changes to followers (`dstackctl logs -f`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from dstack_hybrid.v1 import hybrid_pb2 as pb


class TaskEvents:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[pb.LogEvent]]] = defaultdict(set)

    def subscribe(self, task_id: str) -> asyncio.Queue[pb.LogEvent]:
        queue: asyncio.Queue[pb.LogEvent] = asyncio.Queue()
        self._subscribers[task_id].add(queue)
        return queue

    def unsubscribe(self, task_id: str, queue: asyncio.Queue[pb.LogEvent]) -> None:
        subs = self._subscribers.get(task_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subscribers[task_id]

    def publish(self, task_id: str, event: pb.LogEvent) -> None:
        for queue in self._subscribers.get(task_id, ()):
            queue.put_nowait(event)
