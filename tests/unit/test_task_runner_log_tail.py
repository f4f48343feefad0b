"""TaskRunner reports EXITED only after the whole log, even when the engine's follower ends early.

Under load, docker 20.10's follower of a container that exits can end before it has read the last
lines (the package install test once stored lines 1-26 of 30, then the exit). That race cannot be
forced on a real engine, so this stands in for the runtime with exactly that behaviour: the
following read ends after 26 lines, a plain read afterwards has all 30."""

from __future__ import annotations

import asyncio
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.runtime.docker_runtime import DockerRuntime, TaskContainer
from agent.runtime.task_runner import TaskRunner

LINES = [f"2026-12-02T05:00:{i:02d}.000000000Z line {i}\n".encode() for i in range(1, 31)]


class TruncatingFollower:
    def __init__(self) -> None:
        self.tc = TaskContainer("t1", object())

    def find(self, task_id: str) -> TaskContainer:
        return self.tc

    def log_stream(self, tc: TaskContainer, stream: int, follow: bool = True) -> Any:
        frames = LINES if stream == pb.LOG_STREAM_STDOUT else []
        return iter(frames[:26] if follow else frames)

    frames = staticmethod(DockerRuntime.frames)

    def wait(self, tc: TaskContainer) -> int:
        return 0


def test_exited_comes_after_every_line_when_the_follower_ends_early() -> None:
    sent: list[pb.AgentMessage] = []
    assignment = pb.Assignment(task_id="t1", task_name="t", started=True, stdout_offset=3)
    runner = TaskRunner(TruncatingFollower(), assignment, sent.append)  # type: ignore[arg-type]
    asyncio.run(runner.run())
    kinds = [m.WhichOneof("body") for m in sent]
    assert kinds[-1] == "task_event" and sent[-1].task_event.kind == pb.TASK_EVENT_KIND_EXITED
    got = sorted({line.seq: line.data for m in sent if m.HasField("log") for line in m.log.lines}.items())
    assert [seq for seq, _ in got] == list(range(3, 30))  # from the controller's offset to the end
    assert got[-1][1] == b"line 30\n"
