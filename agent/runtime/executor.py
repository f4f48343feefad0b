"""The real agent's Executor (agent/session.py): tasks as Docker containers, one TaskRunner per
task per stream reporting it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path

import docker.errors
from dstack_hybrid.shared.host_policy import HostPolicy
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.task_runner import Send, TaskRunner
from agent.session import ExecutorUnavailable, superseded

log = logging.getLogger("dstack.agent")


class DockerExecutor:
    def __init__(
        self, native_arch: str, docker_host: str | None, host_id: str, state_dir: Path, policy: HostPolicy
    ) -> None:
        self.native_arch, self.docker_host, self.host_id, self.state_dir = native_arch, docker_host, host_id, state_dir
        self.policy = policy
        self.runtime: DockerRuntime | None = None  # made once the engine answers
        self.runners: dict[tuple[str, int], asyncio.Task[None]] = {}  # by (task id, attempt)
        self._helpers: set[asyncio.Task[None]] = set()  # stops and removals in flight (kept referenced)

    def _runtime(self) -> DockerRuntime:
        assert self.runtime is not None, "present_containers comes first in every stream"
        return self.runtime

    async def present_containers(self) -> list[tuple[str, int]]:
        try:
            if self.runtime is None:
                self.runtime = await asyncio.to_thread(
                    DockerRuntime, self.native_arch, self.docker_host, self.host_id, self.state_dir
                )
            return sorted(await asyncio.to_thread(self.runtime.task_containers))
        except docker.errors.DockerException as exc:
            # The engine is down or restarting: tasks cannot run, so the stream waits for it.
            raise ExecutorUnavailable(f"the Docker engine does not answer: {exc}") from None

    def assign(self, assignment: pb.Assignment, send: Send) -> None:
        key = (assignment.task_id, assignment.attempt or 1)
        current = self.runners.get(key)
        if current is None or current.done():
            self.runners[key] = asyncio.ensure_future(TaskRunner(self._runtime(), assignment, send, self.policy).run())

    def stop(self, stop: pb.StopTask) -> None:
        runtime = self._runtime()
        self._background(
            asyncio.to_thread(runtime.stop, stop.task_id, stop.grace_s or 10, stop.abort, stop.attempt or 1)
        )

    def release(self, release: pb.Release, send: Send) -> None:
        for attempt in self._released_attempts(release):
            current = self.runners.pop((release.task_id, attempt), None)
            if current is not None:
                current.cancel()
            self._background(self._remove(release.task_id, attempt, send))

    async def _remove(self, task_id: str, attempt: int, send: Send) -> None:
        if await asyncio.to_thread(self._runtime().remove, task_id, attempt):
            # It still ran: an attempt the controller replaced (its host was declared lost meanwhile).
            log.info("task %s attempt %d is not current any more: its container was stopped and removed",
                     task_id, attempt)  # fmt: skip
            send(superseded(task_id, attempt))

    def _released_attempts(self, release: pb.Release) -> list[int]:
        if release.attempt:
            return [release.attempt]
        # A controller older than attempts releases the task: whatever this host runs of it.
        return sorted({a for (t, a) in self.runners if t == release.task_id} | {1})

    async def end_stream(self) -> None:
        runners, self.runners = list(self.runners.values()), {}
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
