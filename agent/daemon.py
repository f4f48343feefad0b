"""`dstack-agent run`: register once, then keep one stream to the controller open,
reconnecting with backoff whenever it breaks, and run what it assigns."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import docker.errors
import grpc
from dstack_hybrid.shared import sdnotify
from dstack_hybrid.shared.ca_discovery import (
    CONTROLLER_SAN,
    UntrustedControllerError,
    discover_pinned_ca,
    split_address,
)
from dstack_hybrid.shared.certs import cert_not_after
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.facts import arch, disks
from agent.facts.collect import collect
from agent.facts.model import HostFacts
from agent.facts.overrides import apply_overrides
from agent.facts.sources import FactSources
from agent.identity import load_certificate, load_or_create_key, make_csr, needs_renewal, save_certificate
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.task_runner import TaskRunner
from agent.state import Credential, load_credential, save_credential
from agent.version import AGENT_VERSION

log = logging.getLogger("dstack.agent")

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class FatalError(ValueError):
    """The agent cannot go on (e.g. its credential was refused): exit status 1."""


class Agent:
    def __init__(
        self, config: AgentConfig, state_dir: Path, sources: FactSources, reconnect_cap_s: float = 10.0
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.sources = sources
        self.backoff = Backoff(cap_s=reconnect_cap_s)
        self.runtime: DockerRuntime | None = None
        self.heartbeat_s = 10
        self.redetect = asyncio.Event()  # set by SIGHUP
        self.cert_pem: bytes | None = None
        self.sent_facts: pb.HostFacts | None = None

    def facts(self) -> HostFacts:
        root = self.runtime.data_root() if self.runtime else disks.configured_docker_root()
        return apply_overrides(collect(self.sources, [root] if root else [], self.config.cloud), self.config)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Log followers and waits block a thread each for the life of a task.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=256))
        # SIGHUP re-detects the facts (a driver installed, a disk attached) without a restart.
        loop.add_signal_handler(signal.SIGHUP, self.redetect.set)
        facts = arch.detect(self.sources)
        if not facts.supported:
            raise FatalError(f"unsupported architecture {facts.arch_raw!r}: dstack-agent runs on amd64 and arm64")
        if self.config.arch and self.config.arch != facts.arch:
            raise FatalError(
                f"agent.yaml declares arch {self.config.arch}, but this host is {facts.arch} ({facts.arch_raw})"
            )
        cred = load_credential(self.state_dir) or await self._register()
        while True:
            try:
                if self.runtime is None:
                    self.runtime = DockerRuntime(
                        facts.arch, self.config.docker_host, cred.host_id, state_dir=self.state_dir
                    )
                await self._session(cred)
            except docker.errors.DockerException as exc:
                # The engine is down or restarting: tasks cannot run, so the stream waits for it.
                log.warning("the Docker engine does not answer: %s", exc)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise FatalError(
                        f"the controller refused this host's credential ({exc.details()}); the host was removed "
                        f"or the controller's data was reset: delete {self.state_dir} and register again"
                    ) from None
                log.warning("stream to %s broke: %s", self.config.controller, exc.details() or exc.code().name)
            sdnotify.watchdog()  # alive while the controller is away: the watchdog is for a hung agent
            delay = self.backoff.next_delay()
            log.info("reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _register(self) -> Credential:
        token = self.config.join_token
        if not token:
            raise FatalError(
                "no host credential yet and no join token: pass --join-token or set DSTACK_JOIN_TOKEN "
                "(needed once, for the first registration)"
            )
        try:
            pinned = parse_token(token).ca_fingerprint
        except TokenFormatError:
            raise FatalError("the join token is malformed: expected dstack1.<ca-sha256>.<id>.<secret>") from None
        facts = self.facts()
        csr = b"" if self.config.insecure else make_csr(load_or_create_key(self.state_dir), facts.hostname)
        while True:
            try:
                ca_pem = b"" if self.config.insecure else await self._discover_ca(pinned)
            except OSError as exc:
                delay = self.backoff.next_delay()
                log.warning("cannot reach %s (%s); retrying in %.1fs", self.config.controller, exc, delay)
                await asyncio.sleep(delay)
                continue
            async with self._channel(self.config.controller, ca_pem) as channel:
                stub = pb_grpc.AgentServiceStub(channel)
                try:
                    resp = await stub.Register(
                        pb.RegisterRequest(
                            join_token=token, facts=facts.to_proto(AGENT_VERSION), name=self.config.name or "", csr=csr
                        ),
                        timeout=30,
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (
                        grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.PERMISSION_DENIED,  # e.g. not for this fleet: retrying changes nothing
                    ):
                        raise FatalError(f"registration refused by the controller: {exc.details()}") from None
                    delay = self.backoff.next_delay()
                    log.warning(
                        "cannot register with %s (%s); retrying in %.1fs",
                        self.config.controller,
                        exc.details() or exc.code().name,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
            if not self.config.insecure:
                save_certificate(self.state_dir, resp.certificate, resp.ca_certificate)
            cred = Credential(resp.host_id, resp.host_name, resp.credential, self.config.controller, resp.agent_port)
            save_credential(self.state_dir, cred)
            self.backoff.reset()
            log.info("registered as %s (%s); credential saved in %s", cred.host_name, cred.host_id, self.state_dir)
            return cred

    async def _discover_ca(self, pinned: str) -> bytes:
        """The controller's CA, checked against the join token's pin before any secret is sent."""
        try:
            return await asyncio.to_thread(
                discover_pinned_ca, self.config.controller, pinned, "start the agent with insecure: true"
            )
        except UntrustedControllerError as exc:
            raise FatalError(str(exc)) from None

    def _channel(
        self, address: str, ca_pem: bytes, key_pem: bytes | None = None, cert_pem: bytes | None = None
    ) -> grpc.aio.Channel:
        if self.config.insecure:
            return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)
        # Whatever address was dialled, the certificate must name the controller and chain to the pinned CA.
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", CONTROLLER_SAN)]
        return grpc.aio.secure_channel(address, creds, options=options)

    def _stream_channel(self, cred: Credential) -> tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]]:
        """The channel and call metadata for the agent's stream."""
        if self.config.insecure:
            return self._channel(self.config.controller, b""), (("authorization", f"Bearer {cred.credential}"),)
        found = load_certificate(self.state_dir)
        if found is None:
            raise FatalError(
                f"no host certificate in {self.state_dir}: delete credential.json there and register again"
            )
        cert_pem, ca_pem = found
        self.cert_pem = cert_pem
        host, _ = split_address(self.config.controller)
        host = f"[{host}]" if ":" in host else host
        address = f"{host}:{cred.agent_port}"
        key_pem = load_or_create_key(self.state_dir)
        return self._channel(address, ca_pem, key_pem, cert_pem), ()

    async def _session(self, cred: Credential) -> None:
        assert self.runtime is not None
        runtime = self.runtime
        outbox: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
        containers = await asyncio.to_thread(runtime.task_containers)
        facts = await asyncio.to_thread(self.facts)
        self.sent_facts = facts.to_proto(AGENT_VERSION)
        for warning in facts.warnings:
            log.warning("facts: %s", warning)
        outbox.put_nowait(
            pb.AgentMessage(
                hello=pb.Hello(facts=self.sent_facts, container_task_ids=sorted(containers), host_id=cred.host_id)
            )
        )

        async def outgoing() -> AsyncIterator[pb.AgentMessage]:
            while True:
                yield await outbox.get()

        runners: dict[str, asyncio.Task[None]] = {}
        helpers: set[asyncio.Task[None]] = set()
        heartbeat: asyncio.Task[None] | None = None
        watcher: asyncio.Task[None] | None = None

        def background(work: Awaitable[None]) -> None:
            t = asyncio.ensure_future(work)
            helpers.add(t)
            t.add_done_callback(helpers.discard)

        channel, metadata = self._stream_channel(cred)
        async with channel:
            call = pb_grpc.AgentServiceStub(channel).Connect(outgoing(), metadata=metadata)
            try:
                async for msg in call:
                    kind = msg.WhichOneof("body")
                    if kind == "welcome":
                        self.backoff.reset()
                        self.heartbeat_s = msg.welcome.heartbeat_interval_s or 10
                        heartbeat = asyncio.ensure_future(self._heartbeats(outbox))
                        watcher = asyncio.ensure_future(self._redetect_on_hup(outbox))
                        log.info("connected to %s as %s", self.config.controller, msg.welcome.host_name)
                        sdnotify.ready(f"connected to {self.config.controller} as {msg.welcome.host_name}")
                    elif kind == "assign":
                        task_id = msg.assign.task_id
                        current = runners.get(task_id)
                        if current is None or current.done():
                            runner = TaskRunner(runtime, msg.assign, outbox.put_nowait)
                            runners[task_id] = asyncio.ensure_future(runner.run())
                    elif kind == "stop":
                        background(
                            asyncio.to_thread(runtime.stop, msg.stop.task_id, msg.stop.grace_s or 10, msg.stop.abort)
                        )
                    elif kind == "certificate":
                        await asyncio.to_thread(self._store_renewed, msg.certificate.certificate)
                    elif kind == "release":
                        current = runners.pop(msg.release.task_id, None)
                        if current is not None:
                            current.cancel()
                        background(asyncio.to_thread(runtime.remove, msg.release.task_id))
            finally:
                for loop_task in (heartbeat, watcher):
                    if loop_task is not None:
                        loop_task.cancel()
                for t in runners.values():
                    t.cancel()
                await asyncio.gather(*runners.values(), return_exceptions=True)

    async def _redetect_on_hup(self, outbox: asyncio.Queue[pb.AgentMessage]) -> None:
        while True:
            await self.redetect.wait()
            self.redetect.clear()
            log.info("SIGHUP: detecting this host's facts again")
            fresh = (await asyncio.to_thread(self.facts)).to_proto(AGENT_VERSION)
            if fresh != self.sent_facts:
                self.sent_facts = fresh
                outbox.put_nowait(pb.AgentMessage(facts_update=fresh))
                log.info("facts changed: sent to the controller")

    async def _heartbeats(self, outbox: asyncio.Queue[pb.AgentMessage]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            outbox.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_ms=int(time.time() * 1000))))
            sdnotify.watchdog()
            self._maybe_renew(outbox)

    def _maybe_renew(self, outbox: asyncio.Queue[pb.AgentMessage]) -> None:
        """Asks for the next certificate once two thirds of this one's life are gone (and again
        at every heartbeat until it comes), so a restart never meets an expired certificate."""
        if self.config.insecure or self.cert_pem is None:
            return
        if needs_renewal(self.cert_pem, datetime.now(timezone.utc)):
            csr = make_csr(load_or_create_key(self.state_dir), socket.gethostname())
            outbox.put_nowait(pb.AgentMessage(renew=pb.RenewCertificate(csr=csr)))

    def _store_renewed(self, cert_pem: bytes) -> None:
        found = load_certificate(self.state_dir)
        if found is None:
            return
        try:
            save_certificate(self.state_dir, cert_pem, found[1])
        except ValueError as exc:  # not for our key, or not from our CA: keep the one we have
            log.warning("ignored a renewed certificate: %s", exc)
            return
        self.cert_pem = cert_pem
        log.info("host certificate renewed; valid until %s", cert_not_after(cert_pem).isoformat())
