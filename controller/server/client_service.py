"""ClientService: what dstackctl calls. Every call needs an API token whose role covers it: the
ClientAuth interceptor (controller/server/auth.py) checks that before a method here runs."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator

import grpc
from dstack_hybrid.shared.bounded_input import InputRefused
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.configs.task import TaskConfiguration
from controller.inventory.views import host_facts
from controller.logs.cap import dropped_notice
from controller.logs.pages import LogCursor
from controller.scheduling import taskspec
from controller.scheduling.lifecycle import on_stop_while_offline
from controller.scheduling.requirements import SubmitError, check_host_policy, check_zones, mounts
from controller.server.auth import caller
from controller.server.configs_service import ConfigsMixin
from controller.server.convert import log_line, ms
from controller.server.core import Controller
from controller.server.pending_cap import PendingCap, PendingCapReached
from controller.status_wire import host_state, task_status
from controller.statuses import HostStatus, TaskStatus
from controller.store.records import HostRecord, TaskRecord

log = logging.getLogger("dstack.controller.client")

# How long a follower's first look at a pending task waits for the scheduling pass that is due.
SETTLE_S = 2.0
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
ADJECTIVES = ("brave", "calm", "eager", "fast", "gentle", "happy", "keen", "lucky", "quiet", "wise")
ANIMALS = ("badger", "crane", "falcon", "heron", "lynx", "otter", "panda", "raven", "seal", "zebra")


class ClientService(ConfigsMixin, pb_grpc.ClientServiceServicer):
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.pending_cap = PendingCap(
            controller.settings.max_pending_per_token,
            lambda token_id: controller.store.count_tasks(token_id, TaskStatus.PENDING),
        )

    async def _find(self, name: str, context: grpc.aio.ServicerContext) -> TaskRecord:
        task = self.c.store.find_task(name)
        if task is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no task named {name!r}")
            raise AssertionError("unreachable")
        return task

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.Task:
        try:
            config = taskspec.parse(request.configuration_json)
        except InputRefused as exc:  # a sentence of its own: "the task configuration is larger than ..."
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid task configuration: {exc}")
            raise AssertionError("unreachable") from None
        name = request.name or config.name or self._generated_name()
        if not NAME_RE.match(name):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"invalid task name {name!r}: use lowercase letters, digits and dashes, starting with a letter",
            )
        same = self.c.store.find_task(name)
        if same is not None and same.name == name and not same.terminal:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS, f"task {name} is still active: stop it or choose another name"
            )
        try:
            await self._check(config)
        except SubmitError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        token = caller()
        try:
            with self.pending_cap.submitting(token.id):
                task = TaskRecord(
                    id=uuid.uuid4().hex,
                    name=name,
                    configuration_json=request.configuration_json,
                    image=config.image,
                    submitted_at=self.c.clock(),
                    arch=taskspec.explicit_arch(config) or "",
                    submitted_by=token.id,
                    submitted_by_description=token.description,
                )
                log.info("task %s submitted (%s) by token %s", name, task.image, token.id)
                return self.c.task_message(await self.c.place_new(task))
        except PendingCapReached as exc:
            log.info("token %s refused a submit: %s", token.id, exc)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            raise AssertionError("unreachable") from None

    async def _check(self, config: TaskConfiguration) -> None:
        """What dstack refuses at submit: missing, inactive, doubly mounted or incompatible
        volumes, and zones nothing has (typo protection); and what no registered host's policy
        allows (host paths, privileged)."""
        if config.availability_zones:  # the known zones take a look at every host: only when needed
            zones = self.c.zones_to_check()
            if zones is not None:
                check_zones(config, zones)
        mounts(config, self.c.volumes)
        check_host_policy(config, self.c.policy_hosts())

    def _generated_name(self) -> str:
        while True:
            name = f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}-{secrets.randbelow(1000)}"
            if self.c.store.find_task(name) is None:
                return name

    async def ListTasks(self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext) -> pb.ListTasksResponse:
        tasks = self.c.store.list_tasks(include_finished=request.all)
        return pb.ListTasksResponse(tasks=[self.c.task_message(t) for t in tasks])

    async def GetTask(self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext) -> pb.Task:
        return self.c.task_message(await self._find(request.name, context))

    async def StopTask(self, request: pb.StopTaskRequest, context: grpc.aio.ServicerContext) -> pb.Task:
        task = await self._find(request.name, context)
        if task.terminal:
            return self.c.task_message(task)
        if task.status == TaskStatus.PENDING:
            task.status, task.reason, task.finished_at = TaskStatus.STOPPED, "stopped by user", self.c.clock()
            task.provisioning_reason = ""  # bursting's word on a task that no longer waits
        elif not self.c.is_live(task.host_id, self.c.clock()):
            # Nobody there to stop it, maybe never again: stopped now; the agent gets a Release
            # when it returns (on_hello), which stops and removes the container.
            task, _ = on_stop_while_offline(task, self.c.clock())
            self.c.journal.update(task)
            self.c.release(task.id)
            self.c.publish_status(task)
            self.c.wake()
            log.info("task %s stopped: %s", task.name, task.reason)
            return self.c.task_message(task)
        else:
            task.stop_requested = True
            task.abort_requested = task.abort_requested or request.abort
            self.c.sessions.send(task.host_id, self.c.stop_message(task))
        self.c.journal.update(task)
        self.c.publish_status(task)
        log.info("task %s: stop requested%s", task.name, " (abort)" if request.abort else "")
        return self.c.task_message(task)

    async def TaskHistory(
        self, request: pb.TaskHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.TaskHistoryResponse:
        task = await self._find(request.name, context)
        entries = [
            pb.TaskHistoryEntry(at_ms=ms(e.at), kind=e.kind, message=e.message) for e in self.c.journal.history(task.id)
        ]
        return pb.TaskHistoryResponse(task=self.c.task_message(task), entries=entries)

    async def StreamLogs(
        self, request: pb.StreamLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LogEvent]:
        task = await self._find(request.name, context)
        if request.stdout_offset < 0 or request.stderr_offset < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "log offsets must not be negative")
        if request.HasField("tail") and request.tail < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "--tail must not be negative")
        # A client resuming after a broken stream says how many lines of each stream it has:
        # those are neither read back nor sent again, here or when the agent resends them.
        resume_at: dict[int, int] = {
            pb.LOG_STREAM_STDOUT: request.stdout_offset,
            pb.LOG_STREAM_STDERR: request.stderr_offset,
        }
        # Subscribe before reading the backlog, so no line falls between the two.
        queue = self.c.events.subscribe(task.id)
        try:
            next_seq: dict[int, int] = dict(resume_at)
            async for event in self._backlog(task, request, resume_at):
                if event.HasField("line"):
                    stream = event.line.stream
                    next_seq[stream] = max(next_seq.get(stream, 0), event.line.seq + 1)
                yield event
            if not request.follow:
                return
            current = self.c.store.get_task(task.id) or task
            if current.status == TaskStatus.PENDING:
                # Back to pending a moment ago (refused, retried)? The due pass places it or says why not.
                await self.c.scheduler.settled(SETTLE_S)
                current = self.c.store.get_task(task.id) or current
            yield pb.LogEvent(status=self.c.task_message(current))
            if current.terminal:
                return
            while True:
                event = await queue.get()
                if event.HasField("line"):
                    if event.line.seq < next_seq.get(event.line.stream, 0):
                        continue  # already sent from the backlog
                    next_seq[event.line.stream] = event.line.seq + 1
                yield event
                if event.HasField("status") and (ended := task_status(event.status)) is not None and ended.terminal:
                    return
        finally:
            self.c.events.unsubscribe(task.id, queue)

    async def _backlog(
        self, task: TaskRecord, request: pb.StreamLogsRequest, resume_at: dict[int, int]
    ) -> AsyncIterator[pb.LogEvent]:
        """The stored lines the request asks for, a bounded page at a time, each page read in a
        thread: a big log neither fills the controller's memory nor stalls its event loop."""
        store = self.c.store
        cursor = LogCursor.since(request.since_ns) if request.since_ns > 0 else LogCursor.start()
        if request.HasField("tail"):
            cursor = await asyncio.to_thread(store.tail_cursor, task.id, request.tail, cursor)
        elif request.since_ns <= 0:
            # From the start: say how many of the lines asked for the cap dropped.
            firsts = await asyncio.to_thread(store.log_first_seqs, task.id)
            dropped = sum(max(0, first - resume_at.get(stream, 0)) for stream, first in firsts.items())
            if dropped:
                yield pb.LogEvent(notice=dropped_notice(dropped, self.c.settings.log_cap))
        more = True
        while more:
            page, more = await asyncio.to_thread(store.read_log_page, task.id, cursor, resume_at)
            for line in page:
                yield pb.LogEvent(line=log_line(line))
            if page:
                last = page[-1]
                cursor = LogCursor(last.ts_ns, last.stream, last.seq)

    async def ListHosts(self, request: pb.ListHostsRequest, context: grpc.aio.ServicerContext) -> pb.ListHostsResponse:
        counts = self.c.inventory.ledger.task_counts()
        return pb.ListHostsResponse(
            hosts=[self.host_message(h, counts.get(h.id, 0)) for h in self.c.store.list_hosts()]
        )

    def host_message(self, h: HostRecord, tasks: int = 0) -> pb.Host:
        v = self.c.index.get(h.id) or self.c.refresh_host(h)
        facts = host_facts(h)
        status = HostStatus.of(v.live)
        notice = self.c.inventory.notices.get(h.id)
        return pb.Host(
            id=h.id,
            name=h.name,
            arch=h.arch,
            region=h.region,
            zone=h.zone,
            status=status.value,
            state=host_state(status),
            facts=facts,
            registered_at_ms=int(h.registered_at * 1000),
            last_seen_ms=int(max(h.last_seen, self._session_seen(h.id)) * 1000),
            cpu_total=v.cpu_total,
            cpu_used=v.cpu_used,
            memory_total_bytes=v.memory_total_bytes,
            memory_used_bytes=v.memory_used_bytes,
            tasks=tasks,
            fleet=h.fleet,
            backend=v.backend,
            notice=notice.text if notice else "",
            notice_kind=notice.kind if notice else "",
            notice_not_before_ms=notice.not_before_ms if notice else 0,
        )

    async def RemoveHost(self, request: pb.RemoveHostRequest, context: grpc.aio.ServicerContext) -> pb.Host:
        host = next((h for h in self.c.store.list_hosts() if request.name in (h.name, h.id)), None)
        if host is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no host named {request.name!r}")
            raise AssertionError("unreachable")
        self.c.remove_host(host.id, f"host {host.name} was removed")
        removed = HostStatus.REMOVED
        return pb.Host(
            id=host.id,
            name=host.name,
            arch=host.arch,
            region=host.region,
            zone=host.zone,
            status=removed.value,
            state=host_state(removed),
        )

    async def Apply(self, request: pb.ApplyRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        return await self.apply(request, context)

    async def Delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> pb.DeleteResponse:
        return await self.delete(request, context)

    async def ListFleets(
        self, request: pb.ListFleetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFleetsResponse:
        return await self.list_fleets()

    async def ListVolumes(
        self, request: pb.ListVolumesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListVolumesResponse:
        return await self.list_volumes()

    async def Offers(self, request: pb.OffersRequest, context: grpc.aio.ServicerContext) -> pb.OffersResponse:
        return await self.offers(request, context)

    def _session_seen(self, host_id: str) -> float:
        session = self.c.sessions.get(host_id)
        return session.last_seen if session else 0.0


__all__ = ["ClientService"]
