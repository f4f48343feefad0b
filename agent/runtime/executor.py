"""The real agent's Executor (agent/session.py): tasks as Docker containers, one TaskRunner per
task per stream reporting it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import docker.errors
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.task_runner import Send, TaskRunner
from agent.session import ExecutorUnavailable


class DockerExecutor:
    def __init__(self, native_arch: str, docker_host: str | None, host_id: str, state_dir: Path) -> None:
        self.native_arch, self.docker_host, self.host_id, self.state_dir = native_arch, docker_host, host_id, state_dir
        self.runtime: DockerRuntime | None = None  # made once the engine answers
        self.runners: dict[str, asyncio.Task[None]] = {}
        self._helpers: set[asyncio.Task[None]] = set()  # stops and removals in flight (kept referenced)

    def _runtime(self) -> DockerRuntime:
        assert self.runtime is not None, "present_task_ids comes first in every stream"
        return self.runtime

    async def present_task_ids(self) -> list[str]:
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
        current = self.runners.get(assignment.task_id)
        if current is None or current.done():
            self.runners[assignment.task_id] = asyncio.ensure_future(
                TaskRunner(self._runtime(), assignment, send).run()
            )

    def stop(self, stop: pb.StopTask) -> None:
        self._background(asyncio.to_thread(self._runtime().stop, stop.task_id, stop.grace_s or 10, stop.abort))

    def release(self, task_id: str) -> None:
        current = self.runners.pop(task_id, None)
        if current is not None:
            current.cancel()
        self._background(asyncio.to_thread(self._runtime().remove, task_id))

    async def end_stream(self) -> None:
        runners, self.runners = list(self.runners.values()), {}
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
