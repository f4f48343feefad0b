"""Tasks of simulated hosts: no container, just a timer, reported exactly as the real agent's
TaskRunner reports a container (STARTED, the log lines past the controller's offset, EXITED).

A SimTask stands for the container: it outlives the stream that started it, so after a
reconnect the Hello lists it and the controller's re-assignment re-adopts it instead of
starting it twice. A reporter stands for the TaskRunner: one per task per stream."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from dstack_hybrid.v1 import hybrid_pb2 as pb

Send = Callable[[pb.AgentMessage], None]

SECONDS_ENV = "DSTACK_SIM_SECONDS"
EXIT_CODE_ENV = "DSTACK_SIM_EXIT_CODE"
DEFAULT_SECONDS = 1.0
# What `sh -c 'sleep ...'` exits with on SIGTERM (128+15) and SIGKILL (128+9).
TERM_EXIT = 143
KILL_EXIT = 137


def now_ms() -> int:
    return int(time.time() * 1000)


def event(task_id: str, kind: int, **fields: object) -> pb.AgentMessage:
    return pb.AgentMessage(task_event=pb.TaskEvent(task_id=task_id, kind=kind, at_ms=now_ms(), **fields))  # type: ignore[arg-type]


class SpecError(ValueError):
    """The RunSpec asks for something a simulated run cannot do: reported as FAILED_TO_START."""


def parse_spec(spec: pb.RunSpec) -> tuple[float, int]:
    """(seconds to run, exit code) from the task's env. Mounts are not read: nothing is mounted
    in a simulation, so host paths and cloud volumes (cloud_volume_id) are accepted as they are."""
    raw = spec.env.get(SECONDS_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        raise SpecError(f"{SECONDS_ENV}={raw!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise SpecError(f"{SECONDS_ENV}={raw!r} must be zero or more seconds")
    raw_code = spec.env.get(EXIT_CODE_ENV, "")
    try:
        code = int(raw_code) if raw_code else 0
    except ValueError:
        raise SpecError(f"{EXIT_CODE_ENV}={raw_code!r} is not an exit code") from None
    if not 0 <= code <= 255:
        raise SpecError(f"{EXIT_CODE_ENV}={raw_code!r} must be 0..255")
    return seconds, code


class SimTask:
    """The simulated container: one timer on the event loop (no coroutine, no thread), so
    thousands of running tasks cost next to nothing."""

    def __init__(
        self,
        task_id: str,
        host_name: str,
        seconds: float,
        exit_code: int,
        attempt: int = 1,
        on_exit: Callable[[SimTask], None] | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.on_exit = on_exit  # the attempts log's "ended"
        self.lines: list[pb.LogLine] = [
            pb.LogLine(
                stream=pb.LOG_STREAM_STDOUT, seq=0, ts_ns=time.time_ns(), data=f"simulated on {host_name}\n".encode()
            )
        ]
        self.exit_code: int | None = None
        self.done = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(seconds, self._exit, exit_code)

    def _exit(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.done.set()
            if self.on_exit is not None:
                self.on_exit(self)
        self._timer = None

    def stop(self, abort: bool) -> None:
        """SIGTERM ends a shell's sleep at once, so the grace period never runs out here."""
        if self._timer is not None:
            self._timer.cancel()
        self._exit(KILL_EXIT if abort else TERM_EXIT)

    def remove(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def report(task: SimTask, assignment: pb.Assignment, send: Send) -> None:
    """What TaskRunner sends for a container it started or re-adopted."""
    send(event(task.task_id, pb.TASK_EVENT_KIND_STARTED, attempt=task.attempt))
    # Lines the controller already holds (its offset) are not sent again.
    offsets = {pb.LOG_STREAM_STDOUT: assignment.stdout_offset, pb.LOG_STREAM_STDERR: assignment.stderr_offset}
    fresh = [line for line in task.lines if line.seq >= offsets.get(line.stream, 0)]
    if fresh:
        send(pb.AgentMessage(log=pb.LogChunk(task_id=task.task_id, lines=fresh, attempt=task.attempt)))
    await task.done.wait()
    send(event(task.task_id, pb.TASK_EVENT_KIND_EXITED, exit_code=task.exit_code or 0, attempt=task.attempt))
