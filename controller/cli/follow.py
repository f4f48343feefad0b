"""Following a task's output until it ends, across controller restarts.

A broken stream (the controller restarted, was killed, or its address stopped answering) is
not the task's end: the task goes on on its host. So the follower reconnects with capped
backoff, tells the controller how many lines of each stream it already printed, prints only
what comes after, and finally exits with the task's own exit code. It gives up only once the
controller has been unreachable for the reconnect timeout, and then says so."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.cli import format as fmt
from controller.cli.errors import CommandError, UsageError
from controller.cli.logview import LogView, write_line, write_notice
from controller.cli.trust import UnreachableError
from controller.status_wire import task_status, task_status_text
from controller.statuses import TaskStatus
from controller.tokens import parse_duration

RECONNECT_TIMEOUT_ENV = "DSTACK_RECONNECT_TIMEOUT"
DEFAULT_RECONNECT_TIMEOUT = "5m"
RETRY_CAP_S = 5.0  # between reconnects: a restarted controller is back within seconds

# Words grpc puts in the details when the connection itself broke but it could not classify
# the break as UNAVAILABLE (it depends on where in the HTTP/2 exchange the socket went).
CONNECTION_LOST = ("stream removed", "socket closed", "connection reset", "rst_stream", "goaway", "broken pipe")


class Connection(Protocol):
    """What the follower needs of dstackctl's client: one streaming call, and a fresh channel."""

    @property
    def address(self) -> str: ...

    def stream_logs(self, request: pb.StreamLogsRequest) -> Any: ...

    def reconnect(self) -> None: ...

    def close(self) -> None: ...


def reconnect_timeout(flag: str | None) -> float:
    """Seconds to keep reconnecting: --reconnect-timeout, else the environment, else 5m."""
    text, source = (flag, "--reconnect-timeout") if flag is not None else (None, RECONNECT_TIMEOUT_ENV)
    if text is None:
        text = os.environ.get(RECONNECT_TIMEOUT_ENV) or DEFAULT_RECONNECT_TIMEOUT
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def duration_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def is_transient(exc: grpc.RpcError) -> bool:
    """Whether the error is the connection breaking (retry) rather than an answer (don't)."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED):
        details = (exc.details() or "").lower()
        return any(words in details for words in CONNECTION_LOST)
    return False


def stuck(task: pb.Task) -> int:
    print(f"task {task.name} is pending: {fmt.task_reason(task.reason, task.provisioning_reason)}", file=sys.stderr)
    print(f"it runs when a fitting host registers; `dstackctl stop {task.name}` cancels it", file=sys.stderr)
    return 1


def final(task: pb.Task) -> int:
    status = task_status(task)
    if status == TaskStatus.DONE:
        return 0
    reason = fmt.task_reason(task.reason, task.provisioning_reason)
    if status == TaskStatus.FAILED:
        print(f"task {task.name} failed: {reason}", file=sys.stderr)
        return task.exit_code if task.has_exit_code and task.exit_code > 0 else 1
    print(f"task {task.name} {task_status_text(task)}" + (f": {reason}" if reason else ""), file=sys.stderr)
    return 1


class Follower:
    def __init__(
        self,
        conn: Connection,
        name: str,
        announce: bool,
        timeout_s: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        view: LogView | None = None,
        tail: int | None = None,
        since_ns: int = 0,
    ) -> None:
        self.conn, self.name, self.announce, self.timeout_s = conn, name, announce, timeout_s
        self.view = view or LogView()
        # What the user asked of the backlog. Once a line is printed, a resumed stream asks from
        # that first line's time on (and the offsets skip what was printed), not for a new tail.
        self.tail, self.since_ns = tail, since_ns
        self.backoff = backoff or Backoff(cap_s=RETRY_CAP_S)
        self.clock = clock
        # The next line index expected on each stream: what a resumed stream starts from.
        self.next_seq = {pb.LOG_STREAM_STDOUT: 0, pb.LOG_STREAM_STDERR: 0}
        self.last_status: TaskStatus | None = None
        self.last_attempt = 1
        self.interrupted = threading.Event()
        self._call: Any = None

    def interrupt(self) -> None:
        """Ctrl-C: detach. Safe to call from a signal handler at any point of run()."""
        self.interrupted.set()
        if self._call is not None:
            self._call.cancel()

    def run(self) -> int:
        established = False  # the task exists and a stream to it once worked
        lost_at: float | None = None
        while True:
            request = pb.StreamLogsRequest(
                name=self.name,
                follow=True,
                stdout_offset=self.next_seq[pb.LOG_STREAM_STDOUT],
                stderr_offset=self.next_seq[pb.LOG_STREAM_STDERR],
                since_ns=self.since_ns,
                tail=self.tail,
            )
            self._call = call = self.conn.stream_logs(request)
            if self.interrupted.is_set():
                call.cancel()  # Ctrl-C came between two calls
            try:
                for event in call:
                    if lost_at is not None:
                        print(f"dstackctl: reconnected to {self.conn.address}; following {self.name}", file=sys.stderr)
                        lost_at = None
                        self.backoff.reset()
                    established = True
                    result = self.handle(event)
                    if result is not None:
                        return result
            except grpc.RpcError as exc:
                if self.interrupted.is_set():
                    return self.detached()
                if not established or not is_transient(exc):
                    raise
                why = exc.details() or exc.code().name
            else:
                if self.interrupted.is_set():
                    return self.detached()
                raise CommandError(f"the controller ended the log stream of {self.name} before the task finished")
            finally:
                call.cancel()  # a half-read stream can make grpc hang at interpreter exit
            lost_at = self.wait_before_retry(lost_at, why)
            if lost_at is None:
                return self.detached()

    def wait_before_retry(self, lost_at: float | None, why: str) -> float | None:
        """Sleeps before the next try and opens a fresh channel; None when Ctrl-C came meanwhile.
        Raises once the controller has been unreachable for the whole timeout."""
        while True:
            now = self.clock()
            if lost_at is None:
                lost_at = now
                print(
                    f"dstackctl: the controller at {self.conn.address} is unreachable ({why}); task {self.name} "
                    f"goes on without this client; reconnecting for up to {duration_text(self.timeout_s)} "
                    "(Ctrl-C detaches)",
                    file=sys.stderr,
                )
            left = lost_at + self.timeout_s - now
            if left <= 0:
                raise CommandError(
                    f"the controller stayed unreachable for {duration_text(self.timeout_s)}; what became of task "
                    f"{self.name} is unknown here: see `dstackctl ps -a` and `dstackctl logs {self.name} -f` "
                    "once it is back"
                )
            if self.interrupted.wait(min(self.backoff.next_delay(), left)):
                return None
            try:
                self.conn.reconnect()
            except UnreachableError:
                continue  # could not even fetch its CA: still down
            return lost_at

    def handle(self, event: pb.LogEvent) -> int | None:
        """Prints one event; returns the exit status once the task's fate is known."""
        if event.HasField("line"):
            line = event.line
            stream = pb.LOG_STREAM_STDERR if line.stream == pb.LOG_STREAM_STDERR else pb.LOG_STREAM_STDOUT
            if line.seq < self.next_seq[stream]:
                return None  # printed before the stream broke
            self.next_seq[stream] = line.seq + 1
            if self.tail is not None:
                self.tail, self.since_ns = None, max(self.since_ns, line.ts_ns)
            write_line(self.view, line)
            return None
        if event.HasField("notice"):
            write_notice(event.notice)
            return None
        task = event.status
        status = task_status(task)
        if self.announce and status != self.last_status and status in (TaskStatus.PROVISIONING, TaskStatus.RUNNING):
            where = f" on {task.host}" if task.host else ""
            print(f"task {task.name} is {status}{where}", file=sys.stderr)
        self.last_status = status
        if status == TaskStatus.PENDING and task.attempt > 1:
            # Retried: the next attempt is on its way (its retry window bounds the wait), so the
            # log goes on with the marker line and the new attempt's lines.
            if task.attempt != self.last_attempt:
                print(f"task {task.name} is pending: {task.reason}", file=sys.stderr)
            self.last_attempt = task.attempt
            return None
        if status == TaskStatus.PENDING and (task.reason or task.provisioning_reason):
            return stuck(task)
        if status is not None and status.terminal:
            return final(task)
        return None

    def detached(self) -> int:
        print(f"\ndetached; task {self.name} keeps running (`dstackctl stop {self.name}` stops it)", file=sys.stderr)
        return 130


def follow(
    conn: Connection,
    name: str,
    announce: bool,
    timeout_s: float,
    view: LogView | None = None,
    tail: int | None = None,
    since_ns: int = 0,
) -> int:
    """Streams a task's log until it ends; returns the exit status dstackctl should have."""
    follower = Follower(conn, name, announce, timeout_s, view=view, tail=tail, since_ns=since_ns)
    # Ctrl-C detaches: the task keeps running on its host.
    previous = signal.signal(signal.SIGINT, lambda *_: follower.interrupt())
    try:
        return follower.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        conn.close()
