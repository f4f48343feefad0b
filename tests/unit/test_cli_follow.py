"""dstackctl's follower against a gRPC server on loopback that breaks its streams the way a
restarting controller does, and the small parts it is built from."""

from __future__ import annotations

import argparse
import random
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.cli.channel import split_addresses
from controller.cli.errors import UsageError
from controller.cli.follow import Follower, is_transient
from controller.cli.main import Client


def line(stream: int, seq: int, text: str) -> pb.LogEvent:
    return pb.LogEvent(line=pb.LogLine(stream=stream, seq=seq, data=text.encode()))  # type: ignore[arg-type]


def status(name: str, state: str, exit_code: int | None = None) -> pb.LogEvent:
    task = pb.Task(name=name, status=state, host="h1")
    if exit_code is not None:
        task.has_exit_code, task.exit_code, task.reason = True, exit_code, f"exited with code {exit_code}"
    return pb.LogEvent(status=task)


class ScriptedService(pb_grpc.ClientServiceServicer):
    """Each StreamLogs call plays the next script: events, then an abort (code, details) or the end."""

    def __init__(self, scripts: list[tuple[list[pb.LogEvent], tuple[grpc.StatusCode, str] | None]]) -> None:
        self.scripts = scripts
        self.requests: list[pb.StreamLogsRequest] = []
        self.lock = threading.Lock()

    def StreamLogs(self, request: pb.StreamLogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogEvent]:
        with self.lock:
            self.requests.append(request)
            events, ending = self.scripts.pop(0)
        yield from events
        if ending is not None:
            context.abort(*ending)


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.dstack/ctl.yaml of the machine's user
    servers: list[grpc.Server] = []

    def start(service: ScriptedService) -> Client:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_ClientServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        args = argparse.Namespace(
            controller=f"127.0.0.1:{port}", token="t", ca_file=None, ca_fingerprint=None, insecure=True
        )
        return Client(args)

    yield start
    for server in servers:
        server.stop(None)


def test_a_broken_stream_resumes_at_the_next_line_of_each_stream_and_prints_none_twice(
    serve: Any, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    out, err = pb.LOG_STREAM_STDOUT, pb.LOG_STREAM_STDERR
    service = ScriptedService([
        ([status("t", "running"), line(out, 0, "o0\n"), line(err, 0, "e0\n"), line(out, 1, "o1\n")],
         (grpc.StatusCode.UNAVAILABLE, "Socket closed")),
        # A server that resends what the client already has: the client still prints it once.
        ([line(out, 0, "o0\n"), line(out, 1, "o1\n"), line(out, 2, "o2\n"), line(err, 0, "e0\n"),
          line(err, 1, "e1\n"), status("t", "running")],
         (grpc.StatusCode.UNKNOWN, "Stream removed")),
        ([line(out, 3, "o3\n"), status("t", "failed", 7)], None),
    ])  # fmt: skip
    client = serve(service)
    follower = Follower(client, "t", announce=True, timeout_s=30, backoff=Backoff(0.01, 0.02))
    assert follower.run() == 7
    printed = capfdbinary.readouterr()
    assert printed.out == b"o0\no1\no2\no3\n"
    assert printed.err.count(b"e0\n") == 1 and printed.err.count(b"e1\n") == 1
    assert printed.err.count(b"is running on h1") == 1  # the same status after a reconnect is not news
    assert printed.err.count(b"is unreachable") == 2  # once per outage
    assert [(r.stdout_offset, r.stderr_offset, r.follow) for r in service.requests] == [
        (0, 0, True),
        (2, 1, True),
        (3, 2, True),
    ]


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND]
)
def test_an_answer_that_is_not_a_broken_connection_ends_it_without_a_retry(serve: Any, code: grpc.StatusCode) -> None:
    service = ScriptedService([
        ([status("t", "running")], (grpc.StatusCode.UNAVAILABLE, "Connection reset by peer")),
        ([], (code, "no")),
        ([status("t", "done")], None),
    ])  # fmt: skip
    follower = Follower(serve(service), "t", announce=False, timeout_s=30, backoff=Backoff(0.01, 0.02))
    with pytest.raises(grpc.RpcError) as raised:
        follower.run()
    assert raised.value.code() == code
    assert len(service.requests) == 2


def test_a_task_that_cannot_be_found_at_first_is_not_waited_for(serve: Any) -> None:
    service = ScriptedService([([], (grpc.StatusCode.UNAVAILABLE, "Socket closed"))])
    follower = Follower(serve(service), "t", announce=False, timeout_s=30, backoff=Backoff(0.01, 0.02))
    with pytest.raises(grpc.RpcError):
        follower.run()  # nothing ever answered for this task: the old "cannot reach" error
    assert len(service.requests) == 1


@pytest.mark.parametrize(
    ("code", "details", "transient"),
    [
        (grpc.StatusCode.UNAVAILABLE, "Cancelling all calls", True),  # what a SIGTERM'd controller sends
        (grpc.StatusCode.UNKNOWN, "Stream removed", True),
        (grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2", True),
        (grpc.StatusCode.UNKNOWN, "Exception iterating responses: boom", False),
        (grpc.StatusCode.INVALID_ARGUMENT, "log offsets must not be negative", False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Socket closed", False),
    ],
)
def test_which_errors_are_a_broken_connection(serve: Any, code: grpc.StatusCode, details: str, transient: bool) -> None:
    client = serve(ScriptedService([([], (code, details))]))
    with pytest.raises(grpc.RpcError) as raised:
        list(client.stream_logs(pb.StreamLogsRequest(name="t", follow=True)))
    assert is_transient(raised.value) is transient


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 5.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(40)]
    ceilings = [min(5.0, 0.5 * 2**i) for i in range(40)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 5.0 and len(set(delays)) == 40
    b.reset()
    assert 0.25 <= b.next_delay() <= 0.5


def test_controller_lists_split_on_commas_and_get_the_default_port() -> None:
    assert split_addresses("10.0.0.1:7000, ctl.example.com ,[::1]:9") == [
        "10.0.0.1:7000",
        "ctl.example.com:7443",
        "[::1]:9",
    ]
    assert split_addresses("fd00::5") == ["[fd00::5]:7443"]
    for bad in ("", " , ", "host:port", "a:1:b"):
        with pytest.raises(UsageError):
            split_addresses(bad)
