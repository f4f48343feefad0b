"""A simulated host's Executor (agent/session.py): SimTasks stand for containers and outlive the
stream; one reporter per task per stream stands for the TaskRunner."""

from __future__ import annotations

import asyncio
import logging

from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.session import Send, superseded
from agent.sim.attempts_log import ENDED, RELEASED, STARTED, AttemptsLog
from agent.sim.tasks import SimTask, SpecError, event, parse_spec, report

log = logging.getLogger("dstack.agent.sim")

LOST = "the task's container disappeared from the host"


class SimExecutor:
    def __init__(self, host_name: str, attempts_log: AttemptsLog | None = None) -> None:
        self.host_name = host_name
        self.attempts_log = attempts_log
        # By (task id, attempt), as the real agent's containers: a retried task is a new SimTask.
        self.tasks: dict[tuple[str, int], SimTask] = {}
        self.reporters: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def present_containers(self) -> list[tuple[str, int]]:
        return sorted(self.tasks)

    def assign(self, a: pb.Assignment, send: Send) -> None:
        """Starts the task unless it runs already (a re-assignment after a reconnect re-adopts it)."""
        for mount in a.run.mounts:
            if mount.cloud_volume_id:
                # Nothing is mounted in a simulation; the log says how a real agent would find the disk.
                log.info("task %s on %s: volume %s (%s) by serial %r, LUN %d", a.task_name, self.host_name,
                         mount.volume, mount.cloud_volume_id, mount.device_serial, mount.lun)  # fmt: skip
        key = (a.task_id, a.attempt or 1)
        task = self.tasks.get(key)
        if task is None:
            if a.started:
                # The controller saw it running, but this process has no memory of it (restarted).
                send(event(a.task_id, pb.TASK_EVENT_KIND_LOST, reason=LOST, attempt=key[1]))
                return
            try:
                seconds, exit_code = parse_spec(a.run)
            except SpecError as exc:
                send(event(a.task_id, pb.TASK_EVENT_KIND_FAILED_TO_START, reason=str(exc), attempt=key[1]))
                return
            task = SimTask(a.task_id, self.host_name, seconds, exit_code, key[1], self._ended)
            self.tasks[key] = task
            self._note(task, STARTED)
            log.debug("task %s attempt %d started on %s for %.1fs", a.task_name, key[1], self.host_name, seconds)
        current = self.reporters.get(key)
        if current is None or current.done():
            self.reporters[key] = asyncio.ensure_future(report(task, a, send))

    def stop(self, stop: pb.StopTask) -> None:
        task = self.tasks.get((stop.task_id, stop.attempt or 1))
        if task is not None:
            task.stop(stop.abort)

    def release(self, release: pb.Release, send: Send) -> None:
        keys = [k for k in self.tasks.keys() | self.reporters.keys() if k[0] == release.task_id]
        for key in keys:
            if release.attempt and key[1] != release.attempt:
                continue  # 0 (a controller older than attempts): every attempt of the task
            reporter = self.reporters.pop(key, None)
            if reporter is not None:
                reporter.cancel()
            gone = self.tasks.pop(key, None)
            if gone is not None:
                gone.remove()
                self._note(gone, RELEASED)
                if gone.exit_code is None:
                    send(superseded(*key))  # it still ran: an attempt the controller replaced

    def _ended(self, task: SimTask) -> None:
        self._note(task, ENDED)

    def _note(self, task: SimTask, what: str) -> None:
        if self.attempts_log is not None:
            self.attempts_log.write(self.host_name, task.task_id, task.attempt, what, task.exit_code)

    async def end_stream(self) -> None:
        reporters, self.reporters = list(self.reporters.values()), {}
        for reporter in reporters:
            reporter.cancel()
        await asyncio.gather(*reporters, return_exceptions=True)
