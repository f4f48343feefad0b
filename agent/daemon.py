"""`dstack-agent run`: register once, then keep one stream to the controller open,
reconnecting with backoff whenever it breaks, and run what it assigns."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dstack_hybrid.shared import sdnotify
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.shared.ca_discovery import UntrustedControllerError
from dstack_hybrid.shared.certs import cert_not_after
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.channels import register_channel
from agent.config import AgentConfig
from agent.facts import arch, disks
from agent.facts.collect import collect
from agent.facts.model import HostFacts
from agent.facts.overrides import apply_overrides
from agent.facts.sources import FactSources
from agent.identity import TlsIdentity
from agent.notices.watcher import NoticeWatcher, watched_cloud
from agent.policy import host_policy
from agent.registration import RegistrationRefused, discover_ca, register
from agent.runtime.executor import DockerExecutor
from agent.session import AgentSession, CredentialRefused, Send, SessionHooks
from agent.state import Credential, load_credential, save_credential
from agent.version import AGENT_VERSION

log = logging.getLogger("dstack.agent")


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
        self.executor: DockerExecutor | None = None
        self.redetect = asyncio.Event()  # set by SIGHUP
        self.sent_facts: pb.HostFacts | None = None
        self.notices: NoticeWatcher | None = None  # set on a host whose cloud announces interruptions
        # The CSR's CN is only a hint for people reading the controller's logs.
        self.identity = None if config.insecure else TlsIdentity(config.name or socket.gethostname(), state_dir)
        # Read once, like the rest of agent.yaml: what the controller was told is what is enforced.
        self.policy = host_policy(config, state_dir)

    def facts(self) -> HostFacts:
        runtime = self.executor.runtime if self.executor else None
        root = runtime.data_root() if runtime else disks.configured_docker_root()
        found = apply_overrides(collect(self.sources, [root] if root else [], self.config.cloud), self.config)
        found.policy = self.policy
        return found

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
        cred = load_credential(self.state_dir)
        if cred is not None and self.identity is not None and not self.identity.load():
            raise FatalError(
                f"no host certificate in {self.state_dir}: delete credential.json there and register again"
            )
        if cred is None:
            cred = await self._register()
        self.executor = DockerExecutor(facts.arch, self.config.docker_host, cred.host_id, self.state_dir, self.policy)
        provider = watched_cloud(self.sources, self.config.cloud)
        if provider is not None:
            self.notices = NoticeWatcher(provider, self.sources, self.config.notice_poll_s)
            log.info("watching %s's interruption notices every %gs", provider, self.config.notice_poll_s)
        session = AgentSession(
            cred.host_name,
            self.config.controller,
            cred,
            self.identity,
            self.executor,
            self._hello_facts,
            self.backoff,
            SessionHooks(
                welcomed=self._welcomed,
                heartbeat=sdnotify.watchdog,
                # Alive while the controller is away: the watchdog is for a hung agent.
                retrying=sdnotify.watchdog,
                renewed=lambda pem: log.info(
                    "host certificate renewed; valid until %s", cert_not_after(pem).isoformat()
                ),
                while_connected=self._while_connected,
            ),
        )
        try:
            await session.run()
        except CredentialRefused as exc:
            raise FatalError(
                f"the controller refused this host's credential ({exc}); the host was removed "
                f"or the controller's data was reset: delete {self.state_dir} and register again"
            ) from None

    def _welcomed(self, welcome: pb.Welcome) -> None:
        log.info("connected to %s as %s", self.config.controller, welcome.host_name)
        sdnotify.ready(f"connected to {self.config.controller} as {welcome.host_name}")

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
        csr = b"" if self.identity is None else await asyncio.to_thread(self.identity.csr)
        ca_pem = b""
        if self.identity is not None:
            try:
                ca_pem = await discover_ca(
                    self.config.controller, pinned, "start the agent with insecure: true", self.backoff, log.warning
                )
            except UntrustedControllerError as exc:
                raise FatalError(str(exc)) from None
        request = pb.RegisterRequest(
            join_token=token, facts=facts.to_proto(AGENT_VERSION), name=self.config.name or "", csr=csr
        )
        async with register_channel(self.config.controller, ca_pem, self.identity is None) as channel:
            try:
                resp = await register(
                    pb_grpc.AgentServiceStub(channel), request, self.config.controller, self.backoff, log.warning
                )
            except RegistrationRefused as exc:
                raise FatalError(f"registration refused by the controller: {exc}") from None
        if self.identity is not None:
            await asyncio.to_thread(self.identity.accept, resp.certificate, resp.ca_certificate)
        cred = Credential(resp.host_id, resp.host_name, resp.credential, self.config.controller, resp.agent_port)
        save_credential(self.state_dir, cred)
        self.backoff.reset()
        log.info("registered as %s (%s); credential saved in %s", cred.host_name, cred.host_id, self.state_dir)
        return cred

    async def _hello_facts(self) -> pb.HostFacts:
        facts = await asyncio.to_thread(self.facts)
        for warning in facts.warnings:
            log.warning("facts: %s", warning)
        self.sent_facts = facts.to_proto(AGENT_VERSION)
        return self.sent_facts

    async def _while_connected(self, send: Send) -> None:
        loops = [self._redetect_on_hup(send)]
        if self.notices is not None:
            loops.append(self.notices.run(send))
        await asyncio.gather(*loops)

    async def _redetect_on_hup(self, send: Send) -> None:
        while True:
            await self.redetect.wait()
            self.redetect.clear()
            log.info("SIGHUP: detecting this host's facts again")
            fresh = (await asyncio.to_thread(self.facts)).to_proto(AGENT_VERSION)
            if fresh != self.sent_facts:
                self.sent_facts = fresh
                send(pb.AgentMessage(facts_update=fresh))
                log.info("facts changed: sent to the controller")
