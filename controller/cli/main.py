"""dstackctl: submit tasks, watch them, stop them, list hosts."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc
from dstack_hybrid.shared import host_policy
from dstack_hybrid.shared.version import VERSION
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc
from google.protobuf import json_format

from controller.cli import format as fmt
from controller.cli.channel import answers, open_channel, split_addresses
from controller.cli.cloud_cmds import cmd_instance_types
from controller.cli.configs_cmds import cmd_apply, cmd_delete, cmd_fleet, cmd_offers, cmd_volume
from controller.cli.errors import CommandError, UsageError
from controller.cli.follow import (
    DEFAULT_RECONNECT_TIMEOUT,
    RECONNECT_TIMEOUT_ENV,
    follow,
    reconnect_timeout,
    stuck,
)
from controller.cli.logview import LogView, since_ns, write_line, write_notice
from controller.cli.settings import resolve
from controller.cli.table import render
from controller.cli.trust import UnreachableError, controller_ca
from controller.configs.loader import ConfigError, load_task_file
from controller.status_wire import host_status_text, task_status, task_status_text
from controller.statuses import TaskStatus

# With several controllers listed, how long each may take to answer before the next is tried.
FIRST_ANSWER_S = 5.0
USAGE_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}


class Client:
    """A connection to one controller of the list in --controller / DSTACK_CONTROLLER."""

    def __init__(self, args: argparse.Namespace) -> None:
        s = self.settings = resolve(args.controller, args.token, args.ca_file, args.ca_fingerprint, args.insecure)
        self.addresses = split_addresses(s.controller)
        self._cas: dict[str, bytes] = {}
        self._index = 0
        self.channel = self._open_first()
        self.stub = pb_grpc.ClientServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {self.settings.token}"),)

    @property
    def address(self) -> str:
        return self.addresses[self._index]

    def _open(self, address: str) -> grpc.Channel:
        if self.settings.insecure:
            return open_channel(address, None)
        if address not in self._cas:  # a reconnect trusts what the first contact trusted
            self._cas[address] = controller_ca(address, self.settings.ca_file, self.settings.ca_fingerprint)
        return open_channel(address, self._cas[address])

    def _open_first(self) -> grpc.Channel:
        if len(self.addresses) == 1:
            return self._open(self.addresses[0])  # an unreachable one fails at the call, as it always did
        for index, address in enumerate(self.addresses):
            try:
                channel = self._open(address)
            except UnreachableError:
                continue
            if not answers(channel, FIRST_ANSWER_S):
                channel.close()
                continue
            self._index = index
            return channel
        raise CommandError(f"no controller answers at {', '.join(self.addresses)}")

    def reconnect(self) -> None:
        """A fresh channel to the next address of the list (the same one when there is one):
        a fresh channel dials at once, where an old one may sit out grpc's own backoff."""
        self.channel.close()
        self._index = (self._index + 1) % len(self.addresses)
        self.channel = self._open(self.address)
        self.stub = pb_grpc.ClientServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Callable[..., Any], request: Any) -> Any:
        return method(request, metadata=self.metadata, timeout=60)

    def stream(self, method: Callable[..., Any], request: Any) -> Any:
        return method(request, metadata=self.metadata)

    def stream_logs(self, request: pb.StreamLogsRequest) -> Any:
        return self.stream(self.stub.StreamLogs, request)


def emit(rows: list[dict[str, str]], headers: list[str], as_json: bool, json_rows: list[dict[str, Any]]) -> None:
    if as_json:
        print(json.dumps(json_rows, indent=2))
    else:
        print(render(headers, [[r[h] for h in headers] for r in rows]))


# ------------------------------------------------------------------ submit
def cmd_submit(args: argparse.Namespace) -> int:
    if args.detach and args.reconnect_timeout is not None:
        raise UsageError("--reconnect-timeout is for an attached submit; -d returns at once")
    timeout_s = None if args.detach else reconnect_timeout(args.reconnect_timeout)
    try:
        config = load_task_file(Path(args.file))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    client = Client(args)
    task = client.call(
        client.stub.Submit,
        pb.SubmitRequest(configuration_json=config.model_dump_json(), name=args.name or ""),
    )
    if timeout_s is None:
        print(task.name)
        return 0
    print(f"task {task.name} submitted" + (f", placed on {task.host}" if task.host else ""), file=sys.stderr)
    if task_status(task) == TaskStatus.PENDING and (task.reason or task.provisioning_reason):
        return stuck(task)
    return follow(client, task.name, announce=True, timeout_s=timeout_s)


# --------------------------------------------------------------- ps / logs
def task_row(t: pb.Task) -> dict[str, str]:
    return {
        "NAME": t.name,
        "STATUS": task_status_text(t),
        "HOST": t.host or "-",
        "ARCH": t.arch or "-",
        "SUBMITTED": fmt.ago(t.submitted_at_ms),
        "EXIT": str(t.exit_code) if t.has_exit_code else "-",
        "REASON": fmt.task_reason(t.reason, t.provisioning_reason),
        "ID": t.id,
        "IMAGE": t.image,
        "RESOURCES": t.resources,
        "ATTEMPT": str(t.attempt or 1),
        "RETRY": t.retry or "-",
        "SUBMITTED BY": fmt.submitter(t.submitted_by, t.submitted_by_description),
    }


def task_json(t: pb.Task) -> dict[str, Any]:
    return {
        "name": t.name,
        "status": task_status_text(t),
        "host": t.host or None,
        "reason": fmt.task_reason(t.reason, t.provisioning_reason),
        "placement_reason": t.reason,
        "provisioning_reason": t.provisioning_reason,
        "id": t.id,
        "image": t.image,
        "arch": t.arch or None,
        "exit": t.exit_code if t.has_exit_code else None,
        "submitted": t.submitted_at_ms,
        "resources": t.resources,
        "attempt": t.attempt or 1,
        "retry": t.retry or None,
        "submitted_by": t.submitted_by or None,  # the API token's id
        "submitted_by_description": t.submitted_by_description or None,
    }


def cmd_ps(args: argparse.Namespace) -> int:
    client = Client(args)
    tasks = client.call(client.stub.ListTasks, pb.ListTasksRequest(all=args.all)).tasks
    headers = ["NAME", "STATUS", "HOST", "SUBMITTED", "EXIT", "REASON"]
    if args.verbose:
        headers = ["ID", *headers[:3], "ARCH", "IMAGE", "RESOURCES", "ATTEMPT", "RETRY", "SUBMITTED BY", *headers[3:]]
    emit([task_row(t) for t in tasks], headers, args.json, [task_json(t) for t in tasks])
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    if args.tail is not None and args.tail < 0:
        raise UsageError(f"--tail must be a number of lines, 0 or more, not {args.tail}")
    try:
        since = since_ns(args.since, time.time()) if args.since is not None else 0
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    view = LogView(raw=args.raw, timestamps=args.timestamps)
    if args.follow:
        timeout_s = reconnect_timeout(args.reconnect_timeout)
        return follow(Client(args), args.task, False, timeout_s, view=view, tail=args.tail, since_ns=since)
    if args.reconnect_timeout is not None:
        raise UsageError("--reconnect-timeout is for logs -f; without -f logs prints what is there and returns")
    client = Client(args)
    request = pb.StreamLogsRequest(name=args.task, follow=False, tail=args.tail, since_ns=since)
    for event in client.stream(client.stub.StreamLogs, request):
        if event.HasField("notice"):
            write_notice(event.notice)
        elif event.HasField("line"):
            write_line(view, event.line)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client = Client(args)
    task = client.call(client.stub.StopTask, pb.StopTaskRequest(name=args.task, abort=args.abort))
    status = task_status(task)
    if status is None or not status.terminal:
        print(f"{'aborting' if args.abort else 'stopping'} {task.name}")
        return 0
    # The first words stay "stopped NAME" for scripts; the why follows (an offline host, or a task
    # that had ended before the stop arrived).
    why = task.reason
    if status != TaskStatus.STOPPED:
        why = f"already {status}" + (f": {task.reason}" if task.reason else "")
    print(f"stopped {task.name}" + (f" ({why})" if why else ""))
    return 0


# ------------------------------------------------------------------ events
def history_time(at_ms: int) -> str:
    """UTC, to the millisecond: events of one second keep their order readable."""
    at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at_ms % 1000:03d}"


def cmd_events(args: argparse.Namespace) -> int:
    client = Client(args)
    history = client.call(client.stub.TaskHistory, pb.TaskHistoryRequest(name=args.task))
    entries = list(history.entries)
    if args.json:
        rows = [{"time": history_time(e.at_ms), "at_ms": e.at_ms, "kind": e.kind, "event": e.message} for e in entries]
        print(json.dumps(rows, indent=2))
        return 0
    print(render(["TIME (UTC)", "EVENT"], [[history_time(e.at_ms), e.message] for e in entries]))
    return 0


# ------------------------------------------------------------------- hosts
def gpu_text(facts: pb.HostFacts) -> str:
    """`2xA100-SXM4-80GB (80GB)`, grouping identical GPUs."""
    groups: dict[tuple[str, int], int] = {}
    for g in facts.gpus:
        groups[(g.name, g.memory_bytes)] = groups.get((g.name, g.memory_bytes), 0) + 1
    return ", ".join(f"{n}x{name} ({fmt.size(mem)})" for (name, mem), n in groups.items()) or "-"


def nvme_text(facts: pb.HostFacts) -> str:
    return ", ".join(f"{n.name}:{n.kind}:{fmt.size(n.size_bytes)}" for n in facts.nvme) or "-"


def overridden(value: str, key: str, facts: pb.HostFacts) -> str:
    """Marks a value an operator set in agent.yaml, so nobody mistakes it for detected."""
    return f"{value} (agent.yaml)" if value and key in facts.overridden else (value or "-")


def host_json(h: pb.Host) -> dict[str, Any]:
    facts = json_format.MessageToDict(
        h.facts, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {
        "name": h.name, "arch": h.arch, "zone": h.zone or None, "region": h.region or None,
        "status": host_status_text(h),
        "id": h.id, "cpu_total": h.cpu_total, "cpu_used": h.cpu_used, "memory_total_bytes": h.memory_total_bytes,
        "memory_used_bytes": h.memory_used_bytes, "tasks": h.tasks, "last_seen": h.last_seen_ms,
        "gpus": facts["gpus"], "emulators": facts["emulators"], "facts": facts,
        "notice": h.notice or None,
    }  # fmt: skip


def cmd_hosts(args: argparse.Namespace) -> int:
    if args.action == "rm":
        if not args.target:
            raise UsageError("hosts rm needs the host's name: dstackctl hosts rm NAME")
        client = Client(args)
        removed = client.call(client.stub.RemoveHost, pb.RemoveHostRequest(name=args.target))
        print(f"removed {removed.name}; its certificate no longer connects")
        return 0
    if args.action is not None or args.target is not None:
        raise UsageError(f"unknown hosts command {args.action!r}: use `dstackctl hosts` or `dstackctl hosts rm NAME`")
    client = Client(args)
    hosts = client.call(client.stub.ListHosts, pb.ListHostsRequest()).hosts
    rows = []
    for h in hosts:
        f = h.facts
        rows.append({
            "NAME": h.name, "ARCH": h.arch, "CPU": f"{fmt.cpus(h.cpu_used)}/{fmt.cpus(h.cpu_total)}",
            "MEMORY": f"{fmt.size(h.memory_used_bytes)}/{fmt.size(h.memory_total_bytes)}", "GPU": gpu_text(f),
            "ZONE": overridden(h.zone, "zone", f), "STATUS": host_status_text(h), "TASKS": str(h.tasks), "ID": h.id,
            "CPU MODEL": f.cpu.model or "-", "NVME": nvme_text(f), "CLOUD": f.cloud.provider or "-",
            "REGION": overridden(h.region, "region", f), "INSTANCE TYPE": f.cloud.instance_type or "-",
            "SPOT": ("yes" if f.cloud.spot else "no") if f.cloud.provider else "-",
            "EMULATORS": ",".join(f.emulators) or "-",
            "LABELS": ",".join(f"{k}={v}" for k, v in sorted(f.labels.items())) or "-",
            "LAST SEEN": fmt.ago(h.last_seen_ms), "NOTICE": h.notice or "-",
            "POLICY": host_policy.from_proto(f.policy).summary(),
        })  # fmt: skip
    headers = ["NAME", "ARCH", "CPU", "MEMORY", "GPU", "ZONE", "STATUS", "TASKS"]
    if args.verbose:
        headers = ["ID", *headers, "CPU MODEL", "NVME", "CLOUD", "REGION", "INSTANCE TYPE", "SPOT", "EMULATORS",
                   "LABELS", "POLICY", "LAST SEEN"]  # fmt: skip
    if args.verbose or any(h.notice for h in hosts):
        headers.append("NOTICE")  # the cloud's interruption notice: a column only when there is one to show
    emit(rows, headers, args.json, [host_json(h) for h in hosts])
    return 0


def with_client(func: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
    """Commands that need a connection get one; bad files are refused before it is made."""

    def run(args: argparse.Namespace) -> int:
        return func(args, LazyClient(args))

    return run


class LazyClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._client: Client | None = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = Client(self._args)
        return getattr(self._client, name)


# -------------------------------------------------------------------- main
RECONNECT_HELP = (
    f"how long to keep reconnecting to an unreachable controller while following (or {RECONNECT_TIMEOUT_ENV}; "
    f"default {DEFAULT_RECONNECT_TIMEOUT})"
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--controller", default=None, help="HOST:PORT (or DSTACK_CONTROLLER)")
    common.add_argument("--token", default=None, help="API token (or DSTACK_TOKEN)")
    common.add_argument("--ca-file", default=None, help="the controller's CA certificate (or DSTACK_CA_FILE)")
    common.add_argument(
        "--ca-fingerprint", default=None, help="pin the controller CA's sha256 (or DSTACK_CA_FINGERPRINT)"
    )
    common.add_argument("--insecure", action="store_true", help="plaintext, for a controller run with --insecure")
    p = argparse.ArgumentParser(prog="dstackctl", description="Run tasks on dstack-hybrid hosts.")
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = p.add_subparsers(dest="command", required=True)

    submit = sub.add_parser("submit", parents=[common], help="submit a task and stream its output")
    submit.add_argument("-f", "--file", required=True, help="task YAML (type: task)")
    submit.add_argument("--name", default=None)
    submit.add_argument("-d", "--detach", action="store_true", help="print the task name and return")
    submit.add_argument("--reconnect-timeout", default=None, metavar="DURATION", help=RECONNECT_HELP)
    submit.set_defaults(func=cmd_submit)

    ps = sub.add_parser("ps", parents=[common], help="list tasks")
    ps.add_argument("-a", "--all", action="store_true", help="include finished tasks")
    ps.add_argument("-v", "--verbose", action="store_true")
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=cmd_ps)

    logs = sub.add_parser("logs", parents=[common], help="print a task's output")
    logs.add_argument("task")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until the task ends")
    logs.add_argument("--reconnect-timeout", default=None, metavar="DURATION", help=RECONNECT_HELP)
    logs.add_argument(
        "--tail", type=int, default=None, metavar="N", help="only the last N lines (then new ones with -f)"
    )
    logs.add_argument(
        "--since",
        default=None,
        metavar="DURATION|TIME",
        help="only lines from this long ago (10m, 2h) or since this time (2026-12-02T08:00:00Z)",
    )
    logs.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its engine time (UTC)")
    logs.add_argument(
        "--raw",
        action="store_true",
        help="the task's bytes exactly as written (default: control characters are shown escaped)",
    )
    logs.set_defaults(func=cmd_logs)

    stop = sub.add_parser("stop", parents=[common], help="stop a task (SIGTERM, then SIGKILL)")
    stop.add_argument("task")
    stop.add_argument("--abort", action="store_true", help="SIGKILL at once")
    stop.set_defaults(func=cmd_stop)

    events = sub.add_parser("events", parents=[common], help="a task's recent events, oldest first (times in UTC)")
    events.add_argument("task", help="the task's name or id")
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)

    apply = sub.add_parser("apply", parents=[common], help="apply a fleet or volume file")
    apply.add_argument("-f", "--file", required=True)
    apply.set_defaults(func=with_client(cmd_apply))

    delete = sub.add_parser("delete", parents=[common], help="delete a fleet or volume")
    delete.add_argument("kind", choices=["fleet", "volume"])
    delete.add_argument("name")
    delete.add_argument("--force", action="store_true", help="delete a fleet even while hosts or tasks use it")
    delete.set_defaults(func=with_client(cmd_delete))

    for name, func, what in (("fleet", cmd_fleet, "fleets and their hosts"), ("volume", cmd_volume, "volumes")):
        listing = sub.add_parser(name, parents=[common], help=f"list {what}")
        listing.add_argument("-v", "--verbose", action="store_true")
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(func=with_client(func))

    offers = sub.add_parser("offers", parents=[common], help="where a task would run, and why not elsewhere")
    offers.add_argument("-f", "--file", required=True)
    offers.add_argument("--json", action="store_true")
    offers.set_defaults(func=with_client(cmd_offers))

    types = sub.add_parser("instance-types", help="what the cloud backends say about instance types")
    types_sub = types.add_subparsers(dest="action", required=True)
    check = types_sub.add_parser("check", parents=[common], help="look instance types up in the backends' APIs")
    check.add_argument("names", nargs="*", metavar="TYPE", help="m7g.large, Standard_D2s_v6, ...")
    check.add_argument("--backend", choices=["aws", "azure"], default=None, help="default: every configured one")
    check.add_argument("--region", default=None, help="default: the backend's first region")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=with_client(cmd_instance_types))

    hosts = sub.add_parser("hosts", parents=[common], help="list hosts")
    hosts.add_argument("action", nargs="?", choices=["rm"], help="rm NAME: forget a host and revoke its certificate")
    hosts.add_argument("target", nargs="?", help=argparse.SUPPRESS)
    hosts.add_argument("-v", "--verbose", action="store_true")
    hosts.add_argument("--json", action="store_true")
    hosts.set_defaults(func=cmd_hosts)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except UsageError as exc:
        print(f"dstackctl: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"dstackctl: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
        if code == grpc.StatusCode.UNAVAILABLE:
            where = getattr(args, "controller", None) or "the controller"
            print(f"dstackctl: cannot reach {where}: {details}", file=sys.stderr)
            return 1
        print(f"dstackctl: {details}", file=sys.stderr)
        return 2 if code in USAGE_CODES else 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
