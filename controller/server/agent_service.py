"""AgentService: registration with a join token, then one long-lived stream per agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
from dstack_hybrid.shared.certs import cert_serial
from dstack_hybrid.shared.tokens import TokenFormatError, format_token, hash_secret, parse_token, secrets_match
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.inventory.views import host_view
from controller.pki.ca import host_id_from_cert, sign_host_csr
from controller.provisioning.claims import ClaimRefused
from controller.scheduling.lifecycle import SUPPORTED_ARCHES, attempt_of
from controller.scheduling.requirements import fleet_admission
from controller.server.assignments import stored_seq
from controller.server.auth import bearer, host_for_credential
from controller.server.convert import facts_json
from controller.server.core import Controller
from controller.server.sessions import AgentSession
from controller.store import StorageError
from controller.store.records import HostRecord, InstanceRecord, StoredLogLine, TokenRecord

log = logging.getLogger("dstack.controller.agents")


def cert_serial_hex(cert_pem: bytes | str) -> str:
    return format(cert_serial(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem), "x")


def hello_containers(hello: pb.Hello) -> list[tuple[str, int]]:
    """(task id, attempt) of every container the agent has; an agent older than attempts lists ids only."""
    if hello.containers:
        return [(c.task_id, attempt_of(c.attempt)) for c in hello.containers]
    return [(task_id, 1) for task_id in hello.container_task_ids]


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
        host_id = uuid.uuid4().hex[:12]
        certificate = b""
        if self.c.tls is not None:
            # Signed before the token is spent, so a broken CSR does not burn a single-use token.
            try:
                certificate = sign_host_csr(
                    self.c.tls.ca, request.csr, host_id, timedelta(seconds=self.c.settings.host_cert_validity_s)
                )
            except ValueError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid certificate signing request: {exc}")
        try:
            parsed = parse_token(request.join_token)
        except TokenFormatError:
            parsed = None
        # Fleet checks come before the token is spent (a host turned away keeps its token usable),
        # but only for a caller who holds the token's secret: nobody else learns its fleet.
        peek = store.get_token(parsed.id) if parsed else None
        launch = None
        if parsed and peek and secrets_match(parsed.secret, peek.secret_hash):
            await self._admit_to_fleet(peek.fleet, request, host_id, context)
            launch = await self._claim_launch(peek, request, context)
        try:
            if parsed is None:
                raise TokenFormatError("malformed join token")
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
            id=host_id,
            name=name,
            # With TLS the certificate is the credential; the bearer secret exists for --insecure only.
            credential_hash=hash_secret(secret) if self.c.tls is None else "",
            facts_json=facts_json(request.facts),
            arch=request.facts.arch,
            registered_at=now,
            last_seen=now,
            region=request.facts.region,
            zone=request.facts.zone,
            fleet=token.fleet or request.facts.fleet,
            cert_serial=cert_serial_hex(certificate) if certificate else "",
        )
        store.add_host(host)
        if launch is not None and self.c.burst is not None:
            self.c.burst.registered(launch, host.id)
        self.c.refresh_host(host)
        log.info("host %s (%s, %s) registered with token %s", name, host.id, host.arch, token.id)
        if self.c.tls is None:
            return pb.RegisterResponse(
                host_id=host.id,
                host_name=name,
                credential=format_token("host", host.id, secret),
                agent_port=self.c.agent_port,
            )
        return pb.RegisterResponse(
            host_id=host.id,
            host_name=name,
            certificate=certificate,
            ca_certificate=self.c.tls.ca.cert_pem,
            agent_port=self.c.agent_port,
        )

    async def _admit_to_fleet(
        self, token_fleet: str, request: pb.RegisterRequest, host_id: str, context: grpc.aio.ServicerContext
    ) -> None:
        if token_fleet and request.facts.fleet and request.facts.fleet != token_fleet:
            # The token decides; agent.yaml may only name a fleet when the token names none.
            log.warning("registration refused: the token is for fleet %s, the host asks for %s", token_fleet,
                        request.facts.fleet)  # fmt: skip
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the join token is for fleet {token_fleet}, not {request.facts.fleet}",
            )
        fleet_name = token_fleet or request.facts.fleet
        fleet = self.c.fleets.get(fleet_name)
        if fleet is None:
            return
        probe = HostRecord(id=host_id, name=request.name or "new", credential_hash="", facts_json="",
                           arch=request.facts.arch, registered_at=0, last_seen=0, region=request.facts.region,
                           zone=request.facts.zone, fleet=fleet_name)  # fmt: skip
        why = fleet_admission(fleet, host_view(probe, request.facts, live=True))
        if why:
            log.warning("registration refused: the host does not meet fleet %s's resources: %s", fleet_name, why)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"this host does not meet fleet {fleet_name}'s resources: {why}"
            )

    async def _claim_launch(
        self, token: TokenRecord, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> InstanceRecord | None:
        """A token made for a launch registers that instance only: its metadata must name it."""
        if self.c.burst is None:
            if token.launch_id:
                log.warning("registration refused: a launch's token, and bursting is not configured any more")
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this join token's launch is over")
            return None
        try:
            return self.c.burst.claim(token, request.facts)
        except ClaimRefused as refused:
            log.warning("registration refused: %s", refused)
            code = grpc.StatusCode.UNAVAILABLE if refused.retry else grpc.StatusCode.PERMISSION_DENIED
            await context.abort(code, str(refused))
            raise AssertionError("unreachable") from None

    def _free_name(self, wanted: str) -> str:
        name, n = wanted, 1
        while self.c.store.find_host(name) is not None:
            n += 1
            name = f"{wanted}-{n}"
        return name

    async def Connect(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ControllerMessage]:
        host = await self._authenticate(context)
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("hello"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the first message must be hello")
            return
        if first.hello.host_id and first.hello.host_id != host.id:
            log.warning("a certificate of host %s claimed to be host %s: refused", host.name, first.hello.host_id)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this certificate belongs to host {host.id}, not {first.hello.host_id}",
            )
        host = self._apply_facts(host, first.hello.facts)
        session = AgentSession(host.id, last_seen=self.c.clock())
        self.c.sessions.attach(session)
        self.c.refresh_host(host)  # live now
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
        for message in self.c.on_hello(host, hello_containers(first.hello)):
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
            if self.c.index.get(host.id) is not None:  # not removed meanwhile
                # The last word, written down: a restarted controller counts the lost period from it.
                with contextlib.suppress(StorageError):
                    self.c.store.touch_host(host.id, session.last_seen)
                self.c.refresh_host(self.c.store.get_host(host.id) or host)
            log.info("host %s disconnected", host.name)
            self.c.wake()

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> HostRecord:
        """The host the client certificate names (mutual TLS), or the bearer credential's (--insecure)."""
        if self.c.tls is None:
            host = host_for_credential(self.c.store, bearer(context))
            if host is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked host credential")
                raise AssertionError("unreachable")
            return host
        peer = list((context.auth_context() or {}).get("x509_pem_cert") or [])
        if not peer:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"agents connect to port {self.c.agent_port} with their host certificate",
            )
        pem = peer[0]
        host_id = host_id_from_cert(pem)
        host = self.c.store.get_host(host_id) if host_id else None
        serial = cert_serial_hex(pem)
        if host is None or not host.accepts_serial(serial):
            # Removed hosts and superseded certificates end here: the handshake proved the key,
            # the store says whether the certificate still counts.
            log.warning("refused a connection with certificate %s of host %s: revoked or unknown", serial, host_id)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "host certificate revoked or unknown")
            raise AssertionError("unreachable")
        if serial == host.cert_serial and host.prev_cert_serial:
            host.prev_cert_serial = ""  # the agent uses its newest certificate: the older one is done
            with contextlib.suppress(StorageError):  # written at a later connect, when the storage works
                self.c.store.update_host(host)
        return host

    def _renew(self, host: HostRecord, csr: bytes) -> pb.ControllerMessage | None:
        if self.c.tls is None:
            return None
        try:
            cert = sign_host_csr(self.c.tls.ca, csr, host.id, timedelta(seconds=self.c.settings.host_cert_validity_s))
        except ValueError as exc:
            log.warning("host %s sent an invalid renewal CSR: %s", host.name, exc)
            return None
        fresh = self.c.store.get_host(host.id) or host
        fresh.prev_cert_serial, fresh.cert_serial = fresh.cert_serial, cert_serial_hex(cert)
        self.c.store.update_host(fresh)
        log.info("renewed the certificate of host %s", host.name)
        return pb.ControllerMessage(certificate=pb.HostCertificate(certificate=cert))

    def _apply_facts(self, host: HostRecord, facts: pb.HostFacts) -> HostRecord:
        """The facts count at once (placement reads the in-memory index); a failed write only
        delays the stored copy, the agent sends its facts again at every connect."""
        host.facts_json = facts_json(facts)
        host.region, host.zone = facts.region, facts.zone
        host.last_seen = self.c.clock()
        self.c.refresh_host(host)
        with contextlib.suppress(StorageError):
            self.c.store.update_host(host)
        return host

    async def _consume(
        self, host: HostRecord, session: AgentSession, request_iterator: AsyncIterator[pb.AgentMessage]
    ) -> None:
        try:
            async for message in request_iterator:
                # Liveness is this moment in memory: a host is online because it spoke, whether
                # or not the controller could write that down.
                session.last_seen = self.c.clock()
                kind = message.WhichOneof("body")
                try:
                    host = self._handle(host, session, kind, message)
                except StorageError:
                    # The store logged it once; the stream stays, or every host would flap
                    # offline because the controller's own disk is full.
                    if kind == "task_event":
                        session.unsaved.add(message.task_event.task_id)
                    elif kind == "log":
                        log.warning("dropped %d log lines of task %s: %s", len(message.log.lines),
                                    message.log.task_id, self.c.store.failing)  # fmt: skip
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass

    def _handle(
        self, host: HostRecord, session: AgentSession, kind: str | None, message: pb.AgentMessage
    ) -> HostRecord:
        if kind == "heartbeat":
            self.c.store.touch_host(host.id, session.last_seen)
            self._resend_unsaved(host, session)
        elif kind == "facts_update":
            host = self._apply_facts(host, message.facts_update)
            log.info("host %s sent new facts", host.name)
            self.c.wake()  # a new GPU or more memory may fit a pending task
        elif kind == "log":
            self._store_logs(host, session, message.log)
        elif kind == "renew":
            reply = self._renew(host, message.renew.csr)
            if reply is not None:
                session.send(reply)
        elif kind == "task_event":
            for reply in self.c.on_task_event(host, message.task_event):
                session.send(reply)
        elif kind == "notice":
            for reply in self.c.on_notice(host, message.notice):
                session.send(reply)
        return host

    def _resend_unsaved(self, host: HostRecord, session: AgentSession) -> None:
        """Writes work again: the tasks whose reports were lost are assigned again, and the agent
        answers as after a reconnect (it re-adopts the container and reports what it finds)."""
        while session.unsaved:
            task = self.c.store.get_task(session.unsaved.pop())
            if task is not None and task.host_id == host.id and not task.terminal:
                session.send(self.c.assignment(task))

    def _store_logs(self, host: HostRecord, session: AgentSession, chunk: pb.LogChunk) -> None:
        task = self.c.store.get_task(chunk.task_id)
        attempt = attempt_of(chunk.attempt)
        if task is None or task.host_id != host.id or task.attempt != attempt or task.terminal:
            # Only the current attempt on the task's current host speaks for it; anything else is
            # a container that should not run (any more): its attempt is released.
            if task is not None and task.host_id != host.id and attempt >= task.attempt:
                # Not a stale attempt of a task that moved on: a host speaking for another's task.
                log.warning("host %s sent log lines for task %s, which is not its own: dropped", host.name,
                            chunk.task_id)  # fmt: skip
            else:
                log.info("host %s sent log lines of task %s attempt %d, not its current one: dropped, released",
                         host.name, chunk.task_id, attempt)  # fmt: skip
            session.send(pb.ControllerMessage(release=pb.Release(task_id=chunk.task_id, attempt=attempt)))
            return
        lines = [
            StoredLogLine(int(ln.stream), stored_seq(task, int(ln.stream), ln.seq), ln.ts_ns, ln.data)
            for ln in chunk.lines
        ]
        for line in self.c.store.append_logs(chunk.task_id, lines, cap=self.c.settings.log_cap):
            self.c.events.publish(
                chunk.task_id,
                pb.LogEvent(line=pb.LogLine(stream=line.stream, seq=line.seq, ts_ns=line.ts_ns, data=line.data)),  # type: ignore[arg-type]
            )
