"""dstackctl, the installed program, against controllers of three generations on loopback: one
that sends a status twice (the `state` enum and the `status` word, as this release does), one
older than the enum fields (the word only), and one that sends the enum only (as a release
that stops filling the words will). Every command that shows or acts on a status must print
the same text and exit the same way for all three."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc
from google.protobuf.message import Message

from controller.status_wire import host_state, task_state
from controller.statuses import HostStatus, TaskStatus

DSTACKCTL = Path(sys.executable).parent / "dstackctl"
FORMS = ("both", "word-only", "enum-only")


def as_sent(message: Message, form: str) -> Message:
    """The message as a controller of that generation sends it: every message that carries a
    status twice (Task, Host, Offer, nested or not) keeps the word, the enum, or both."""
    sent = type(message).FromString(message.SerializeToString())  # a copy, as it goes over the wire
    drop = {"word-only": "state", "enum-only": "status"}.get(form)
    if drop is not None:
        _drop(sent, drop)
    return sent


def _drop(message: Message, field: str) -> None:
    names = {f.name for f in message.DESCRIPTOR.fields}
    if {"state", "status"} <= names:
        message.ClearField(field)
    for described, value in message.ListFields():
        if described.message_type is None or described.message_type.GetOptions().map_entry:
            continue
        for item in [value] if isinstance(value, Message) else value:  # one message, or a repeated field
            _drop(item, field)


def task(name: str, status: TaskStatus, **fields: object) -> pb.Task:
    return pb.Task(name=name, id=f"id-{name}", status=status.value, state=task_state(status), image="busybox:1.36",
                   submitted_at_ms=1, **fields)  # type: ignore[arg-type]  # fmt: skip


def host(name: str, status: HostStatus, **fields: object) -> pb.Host:
    return pb.Host(name=name, id=f"id-{name}", arch="amd64", status=status.value, state=host_state(status),
                   last_seen_ms=1, cpu_total=4, memory_total_bytes=8 << 30, **fields)  # type: ignore[arg-type]  # fmt: skip


TASKS = [
    task("t-pending", TaskStatus.PENDING, reason="no host has 64 CPUs"),
    task("t-provisioning", TaskStatus.PROVISIONING, host="h-online"),
    task("t-running", TaskStatus.RUNNING, host="h-online"),
    task("t-done", TaskStatus.DONE, host="h-online", has_exit_code=True, exit_code=0),
    task("t-failed", TaskStatus.FAILED, host="h-online", has_exit_code=True, exit_code=3, reason="exited with code 3"),
    task("t-stopped", TaskStatus.STOPPED, reason="stopped by user"),
    task("t-refused", TaskStatus.REFUSED, reason="image is linux/s390x only"),
]
HOSTS = [host("h-online", HostStatus.ONLINE, tasks=2, fleet="f1"), host("h-offline", HostStatus.OFFLINE, fleet="f1")]


def stream(name: str, end: TaskStatus, exit_code: int) -> list[pb.LogEvent]:
    placed = {"host": "h-online"}
    ended = task(name, end, has_exit_code=True, exit_code=exit_code, **placed)
    if end == TaskStatus.FAILED:
        ended.reason = f"exited with code {exit_code}"
    return [
        pb.LogEvent(status=task(name, TaskStatus.PROVISIONING, **placed)),
        pb.LogEvent(status=task(name, TaskStatus.RUNNING, **placed)),
        pb.LogEvent(line=pb.LogLine(stream=pb.LOG_STREAM_STDOUT, seq=0, data=b"hello\n")),
        pb.LogEvent(status=ended),
    ]


class Controller(pb_grpc.ClientServiceServicer):
    def __init__(self, form: str) -> None:
        self.form = form

    def send(self, message: Message) -> Message:
        return as_sent(message, self.form)

    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksResponse:
        tasks = [t for t in TASKS if request.all or not TaskStatus(t.status).terminal]
        return self.send(pb.ListTasksResponse(tasks=tasks))  # type: ignore[return-value]

    def ListHosts(self, request: pb.ListHostsRequest, context: grpc.ServicerContext) -> pb.ListHostsResponse:
        return self.send(pb.ListHostsResponse(hosts=HOSTS))  # type: ignore[return-value]

    def ListFleets(self, request: pb.ListFleetsRequest, context: grpc.ServicerContext) -> pb.ListFleetsResponse:
        fleet = pb.Fleet(name="f1", configuration_json='{"name": "f1"}', status="active", hosts=HOSTS)
        return self.send(pb.ListFleetsResponse(fleets=[fleet]))  # type: ignore[return-value]

    def Offers(self, request: pb.OffersRequest, context: grpc.ServicerContext) -> pb.OffersResponse:
        offers = [
            pb.Offer(host="h-online", chosen=True, arch="amd64", status="online", state=pb.HOST_STATUS_ONLINE),
            pb.Offer(host="h-offline", arch="amd64", reason="offline", status="offline", state=pb.HOST_STATUS_OFFLINE),
        ]
        return self.send(pb.OffersResponse(offers=offers))  # type: ignore[return-value]

    def StopTask(self, request: pb.StopTaskRequest, context: grpc.ServicerContext) -> pb.Task:
        return self.send(next(t for t in TASKS if t.name == request.name))  # type: ignore[return-value]

    def Submit(self, request: pb.SubmitRequest, context: grpc.ServicerContext) -> pb.Task:
        if request.name == "stuck":
            return self.send(task("stuck", TaskStatus.PENDING, reason="no host has 64 CPUs"))  # type: ignore[return-value]
        return self.send(task(request.name, TaskStatus.PROVISIONING, host="h-online"))  # type: ignore[return-value]

    def StreamLogs(self, request: pb.StreamLogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogEvent]:
        end, code = (TaskStatus.FAILED, 3) if "bad" in request.name else (TaskStatus.DONE, 0)
        for event in stream(request.name, end, code):
            yield self.send(event)  # type: ignore[misc]


COMMANDS = [
    ("ps", "-a"),
    ("ps", "-a", "--json"),
    ("ps",),
    ("hosts",),
    ("hosts", "--json"),
    ("fleet",),
    ("fleet", "--json"),
    ("offers", "-f", "{task}"),
    ("offers", "-f", "{task}", "--json"),
    ("stop", "t-running"),
    ("stop", "t-done"),
    ("logs", "-f", "ok"),
    ("logs", "-f", "bad"),
    ("submit", "-f", "{task}", "--name", "fine"),
    ("submit", "-f", "{task}", "--name", "bad"),
    ("submit", "-f", "{task}", "--name", "stuck"),
]


@pytest.fixture
def dstackctl(tmp_path: Path) -> Iterator[Callable[[str], list[tuple[int, str, str]]]]:
    task_file = tmp_path / "task.yaml"
    task_file.write_text("type: task\nimage: busybox:1.36\ncommands: [echo hello]\n")
    servers: list[grpc.Server] = []

    def run_all(form: str) -> list[tuple[int, str, str]]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_ClientServiceServicer_to_server(Controller(form), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        env = dict(os.environ, HOME=str(tmp_path), DSTACK_CONTROLLER=f"127.0.0.1:{port}", DSTACK_TOKEN="t",
                   DSTACK_INSECURE="1")  # fmt: skip
        results = []
        for command in COMMANDS:
            args = [a.format(task=task_file) for a in command]
            out = subprocess.run([str(DSTACKCTL), *args], capture_output=True, text=True, env=env, timeout=60)
            results.append((out.returncode, out.stdout, out.stderr))
        return results

    yield run_all
    for server in servers:
        server.stop(None)


def test_every_generation_of_controller_gets_the_same_output(
    dstackctl: Callable[[str], list[tuple[int, str, str]]],
) -> None:
    results = {form: dstackctl(form) for form in FORMS}
    for form in FORMS[1:]:
        for command, now, then in zip(COMMANDS, results["both"], results[form], strict=True):
            assert then == now, f"dstackctl {' '.join(command)}: {form} differs"
    # ...and that output is the right one, not the same mistake three times.
    by_command = dict(zip((" ".join(c) for c in COMMANDS), results["enum-only"], strict=True))
    rc, out, _ = by_command["ps -a"]
    table = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rc == 0 and table == {t.name: t.status for t in TASKS}
    assert '"status": "refused"' in by_command["ps -a --json"][1]
    assert [line.split()[0] for line in by_command["ps"][1].splitlines()[1:]] == [
        "t-pending", "t-provisioning", "t-running",
    ]  # fmt: skip
    assert " online " in by_command["hosts"][1] and " offline " in by_command["hosts"][1]
    assert '"status": "offline"' in by_command["hosts --json"][1]
    assert by_command["fleet"][1].splitlines()[1].split()[:2] == ["f1", "1/2"]  # one of its two hosts online
    assert "offline" in by_command["offers -f {task}"][1]
    assert by_command["stop t-running"][1] == "stopping t-running\n"
    assert by_command["stop t-done"][1] == "stopped t-done (already done)\n"  # not a stop: it had ended
    assert by_command["logs -f ok"][:2] == (0, "hello\n")
    assert by_command["logs -f bad"][0] == 3 and "task bad failed: exited with code 3" in by_command["logs -f bad"][2]
    rc, out, err = by_command["submit -f {task} --name fine"]
    assert (rc, out) == (0, "hello\n")
    assert "task fine is provisioning on h-online" in err and "task fine is running on h-online" in err
    assert by_command["submit -f {task} --name bad"][0] == 3
    rc, _, err = by_command["submit -f {task} --name stuck"]
    assert rc == 1 and "task stuck is pending: no host has 64 CPUs" in err
