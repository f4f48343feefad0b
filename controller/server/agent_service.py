"""AgentService: registration with a join token, then one long-lived stream per agent."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncIterator

import grpc
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.server.auth import bearer, host_for_credential
from controller.server.convert import facts_json
from controller.server.core import SUPPORTED_ARCHES, Controller
from controller.server.sessions import AgentSession
from controller.store.records import HostRecord, StoredLogLine
from controller.tokens import TokenFormatError, format_token, hash_secret, parse_token

log = logging.getLogger("dstack.controller.agents")


class AgentService(pb_grpc.AgentServiceServicer):
    def __init__(self, controller: Controller) -> None:
        self.c = controller

    async def Register(self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext) -> pb.RegisterResponse:
        store = self.c.store
        if request.facts.arch not in SUPPORTED_ARCHES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unsupported architecture {request.facts.arch_raw or request.facts.arch!r}: "
                "dstack-hybrid runs amd64 and arm64 hosts",
            )
        try:
            parsed = parse_token(request.join_token)
            token, why = store.use_token(parsed.id, hash_secret(parsed.secret), "join", self.c.clock())
        except TokenFormatError:
            token, why = None, "malformed join token"
        if token is None:
            # The operator reads why in this log; the caller learns only that it was refused.
            log.warning("registration refused: %s", why)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "join token refused")
            raise AssertionError("unreachable")
        name = self._free_name(request.name or request.facts.hostname or "host")
        secret = secrets.token_urlsafe(32)
        now = self.c.clock()
        host = HostRecord(
            id=uuid.uuid4().hex[:12],
            name=name,
            credential_hash=hash_secret(secret),
            facts_json=facts_json(request.facts),
            arch=request.facts.arch,
            registered_at=now,
            last_seen=now,
            region=request.facts.region,
            zone=request.facts.zone,
            fleet=token.fleet or request.facts.fleet,
        )
        store.add_host(host)
        log.info("host %s (%s, %s) registered with token %s", name, host.id, host.arch, token.id)
        return pb.RegisterResponse(host_id=host.id, host_name=name, credential=format_token("host", host.id, secret))

    def _free_name(self, wanted: str) -> str:
        taken = {h.name for h in self.c.store.list_hosts()}
        name, n = wanted, 1
        while name in taken:
            n += 1
            name = f"{wanted}-{n}"
        return name

    async def Connect(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ControllerMessage]:
        host = host_for_credential(self.c.store, bearer(context))
        if host is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked host credential")
            return
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("hello"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the first message must be hello")
            return
        host = self._apply_facts(host, first.hello.facts)
        session = AgentSession(host.id, last_seen=self.c.clock())
        self.c.sessions.attach(session)
        log.info("host %s connected", host.name)
        session.send(
            pb.ControllerMessage(
                welcome=pb.Welcome(
                    host_id=host.id,
                    host_name=host.name,
                    heartbeat_interval_s=self.c.settings.heartbeat_interval_s,
                )
            )
        )
        for message in self.c.on_hello(host, list(first.hello.container_task_ids)):
            session.send(message)
        self.c.wake()  # new capacity
        reader = asyncio.ensure_future(self._consume(host, session, request_iterator))
        try:
            while True:
                getter = asyncio.ensure_future(session.outbox.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                outgoing = getter.result()
                if outgoing is None:  # replaced by a newer stream of the same host
                    break
                yield outgoing
        finally:
            reader.cancel()
            self.c.sessions.detach(session)
            log.info("host %s disconnected", host.name)
            self.c.wake()

    def _apply_facts(self, host: HostRecord, facts: pb.HostFacts) -> HostRecord:
        host.facts_json = facts_json(facts)
        host.region, host.zone = facts.region, facts.zone
        host.last_seen = self.c.clock()
        self.c.store.update_host(host)
        return host

    async def _consume(
        self, host: HostRecord, session: AgentSession, request_iterator: AsyncIterator[pb.AgentMessage]
    ) -> None:
        try:
            async for message in request_iterator:
                session.last_seen = self.c.clock()
                kind = message.WhichOneof("body")
                if kind == "heartbeat":
                    self.c.store.touch_host(host.id, session.last_seen)
                elif kind == "facts_update":
                    host = self._apply_facts(host, message.facts_update)
                    log.info("host %s sent new facts", host.name)
                    self.c.wake()  # a new GPU or more memory may fit a pending task
                elif kind == "log":
                    self._store_logs(message.log)
                elif kind == "task_event":
                    for reply in self.c.on_task_event(host, message.task_event):
                        session.send(reply)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass

    def _store_logs(self, chunk: pb.LogChunk) -> None:
        lines = [StoredLogLine(int(ln.stream), ln.seq, ln.ts_ns, ln.data) for ln in chunk.lines]
        for line in self.c.store.append_logs(chunk.task_id, lines):
            self.c.events.publish(
                chunk.task_id,
                pb.LogEvent(line=pb.LogLine(stream=line.stream, seq=line.seq, ts_ns=line.ts_ns, data=line.data)),  # type: ignore[arg-type]
            )
