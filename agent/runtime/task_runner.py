"""Runs or re-adopts one task's container and reports it: started, every log line, exit code.

A runner lives as long as the agent's stream; when the stream breaks it is cancelled and
a new one starts from the controller's offsets on the next assignment, so no line is lost
and none is stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dstack_hybrid.shared.host_policy import HostPolicy
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.policy import refusal
from agent.runtime.docker_runtime import DockerRuntime, RefusedError, StartError, TaskContainer

log = logging.getLogger("dstack.agent.task")

Send = Callable[[pb.AgentMessage], None]


def now_ms() -> int:
    return int(time.time() * 1000)


class TaskRunner:
    def __init__(
        self, runtime: DockerRuntime, assignment: pb.Assignment, send: Send, policy: HostPolicy
    ) -> None:
        self.runtime = runtime
        self.a = assignment
        self.send = send
        self.policy = policy
        self._streams: list[Any] = []
        self._closed = threading.Event()

    def event(self, kind: int, **fields: Any) -> None:
        event = pb.TaskEvent(task_id=self.a.task_id, kind=kind, at_ms=now_ms(), attempt=self.attempt, **fields)  # type: ignore[arg-type]
        self.send(pb.AgentMessage(task_event=event))

    @property
    def attempt(self) -> int:
        return self.a.attempt or 1

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            self.close()
            raise

    async def _run(self) -> None:
        tc = await asyncio.to_thread(self.runtime.find, self.a.task_id, self.attempt)
        if tc is None:
            if self.a.started:
                self.event(pb.TASK_EVENT_KIND_LOST, reason="the task's container disappeared from the host")
                return
            tc = await self._start()
            if tc is None:
                return
        self.event(pb.TASK_EVENT_KIND_STARTED)
        loop = asyncio.get_running_loop()
        pumps = [
            loop.run_in_executor(None, self._pump, loop, tc, pb.LOG_STREAM_STDOUT, self.a.stdout_offset),
            loop.run_in_executor(None, self._pump, loop, tc, pb.LOG_STREAM_STDERR, self.a.stderr_offset),
        ]
        sent = await asyncio.gather(*pumps)
        if self._closed.is_set():
            return
        # Both streams ended, so the container has exited. A following read can end before the
        # engine hands over the last lines (measured: 1 in 15 runs of a 4 KiB write lost its tail,
        # with json-file and local drivers alike); a plain read after the exit has them all, so
        # the lines past what the follow sent go now, before EXITED promises every line was sent.
        exit_code = await asyncio.to_thread(self.runtime.wait, tc)
        await asyncio.gather(
            loop.run_in_executor(None, self._pump, loop, tc, pb.LOG_STREAM_STDOUT, sent[0], False),
            loop.run_in_executor(None, self._pump, loop, tc, pb.LOG_STREAM_STDERR, sent[1], False),
        )
        if self._closed.is_set():
            return
        log.info("task %s exited with code %d", self.a.task_name, exit_code)
        self.event(pb.TASK_EVENT_KIND_EXITED, exit_code=exit_code)

    async def _start(self) -> TaskContainer | None:
        spec = self.a.run
        refused = await asyncio.to_thread(refusal, spec, self.policy)  # realpath reads the file system
        if refused:
            # Before the pull: nothing of the task is made on this host. REFUSED keeps it off this
            # host for good, and the controller tries another.
            log.warning("task %s: %s", self.a.task_name, refused)
            self.event(pb.TASK_EVENT_KIND_REFUSED, reason=refused)
            return None
        try:
            loop = asyncio.get_running_loop()

            def pulling() -> None:  # called in the pull's thread: the event is sent from the loop's
                loop.call_soon_threadsafe(self.event, pb.TASK_EVENT_KIND_PULLING)

            await asyncio.to_thread(self.runtime.prepare_image, spec.image, spec.always_pull, pulling)
            tc = await asyncio.to_thread(
                self.runtime.create_and_start, self.a.task_id, self.a.task_name, spec, self.attempt
            )
        except RefusedError as exc:
            log.warning("task %s: %s", self.a.task_name, exc.reason)
            self.event(pb.TASK_EVENT_KIND_REFUSED, reason=exc.reason, image_platform=exc.image_platform)
            return None
        except StartError as exc:
            log.warning("task %s failed to start: %s", self.a.task_name, exc)
            self.event(pb.TASK_EVENT_KIND_FAILED_TO_START, reason=str(exc))
            return None
        log.info("task %s started", self.a.task_name)
        return tc

    def _pump(
        self, loop: asyncio.AbstractEventLoop, tc: TaskContainer, stream: int, offset: int, follow: bool = True
    ) -> int:
        """Worker thread: reads one output stream from the start, skips the first `offset` lines
        (what the controller holds, or what was sent already), sends the rest; returns the number of
        lines the stream had, or `offset` if more."""
        raw = self.runtime.log_stream(tc, stream, follow)
        self._streams.append(raw)
        if self._closed.is_set():
            raw.close()
            return offset
        seq = 0
        try:
            for ts_ns, data in self.runtime.frames(raw):
                if seq >= offset:
                    line = pb.LogLine(stream=stream, seq=seq, ts_ns=ts_ns, data=data)  # type: ignore[arg-type]
                    chunk = pb.LogChunk(task_id=self.a.task_id, lines=[line], attempt=self.attempt)
                    msg = pb.AgentMessage(log=chunk)
                    loop.call_soon_threadsafe(self.send, msg)
                seq += 1
        except Exception as exc:  # the stream was closed under us, or the engine went away
            if not self._closed.is_set():
                log.warning("task %s: log stream ended: %s", self.a.task_name, exc)
        return max(seq, offset)

    def close(self) -> None:
        self._closed.set()
        for raw in self._streams:
            # Closing a half-closed socket can raise; there is nothing left to do then.
            with contextlib.suppress(Exception):
                raw.close()
