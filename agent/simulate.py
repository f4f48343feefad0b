"""`dstack-agent simulate`: many hosts from one process, like kwok for Kubernetes.

Each simulated host does what `dstack-agent run` does, through the same protocol: its own EC key
and CSR, Register with the join token over TLS verified against the CA the token pins, then one
Connect stream on the agent port with its own client certificate (mutual TLS), heartbeats at the
interval the Welcome names, renewal at two thirds of the certificate's life, reconnects with
backoff. Tasks run without Docker (agent/sim/tasks.py).

Everything shares one asyncio event loop: a host costs a few coroutines and one TCP connection,
not a thread, so a small machine holds thousands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
import time

import grpc
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.shared.ca_discovery import UntrustedControllerError
from dstack_hybrid.shared.tokens import parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.channels import register_channel
from agent.identity import KEY_FILE, TlsIdentity
from agent.registration import RegistrationRefused, discover_ca, register
from agent.session import AgentSession, CredentialRefused, SessionHooks
from agent.sim.attempts_log import AttemptsLog
from agent.sim.executor import SimExecutor
from agent.sim.facts import host_facts, host_name
from agent.sim.settings import SimSettings, settings_from_args
from agent.state import Credential, load_credential, save_credential
from agent.version import AGENT_VERSION

log = logging.getLogger("dstack.agent.sim")

PROGRESS_EVERY_S = 5.0


class SimulationError(ValueError):
    """The simulation cannot go on (a refused join token, a CA that does not match the pin): exit 1."""


def simulate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    # Opened before anything is sent: a path that cannot be written is bad input (exit 2).
    attempts_log = AttemptsLog(settings.attempts_log) if settings.attempts_log is not None else None
    _raise_fd_limit(settings.count)
    try:
        asyncio.run(Simulator(settings, attempts_log).run())
    except KeyboardInterrupt:  # before the loop's own handler is in place
        return 130
    finally:
        if attempts_log is not None:
            attempts_log.close()
    return 0


def _raise_fd_limit(count: int) -> None:
    """Each host holds one connection (one descriptor); the default soft limit of 1024 would
    cap a simulation far below what the machine can do, so take what the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256  # the registration channel, grpc's own pipes, logs
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft != resource.RLIM_INFINITY and soft < want:
        log.warning("only %d file descriptors allowed (ulimit -n): fewer than %d hosts can connect", soft, count)


class Throttled:
    """One warning line per interval for the same kind of trouble: when a controller restarts,
    thousands of hosts' streams break at once and each line would say the same thing."""

    def __init__(self, every_s: float = PROGRESS_EVERY_S) -> None:
        self.every_s = every_s
        self.next_at = 0.0
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.suppressed += 1
            return
        more = f" (and {self.suppressed} more like it)" if self.suppressed else ""
        log.warning(msg + more, *args)
        self.suppressed = 0
        self.next_at = now + self.every_s


class Simulator:
    def __init__(self, settings: SimSettings, attempts_log: AttemptsLog | None = None) -> None:
        self.s = settings
        self.attempts_log = attempts_log
        self.started = time.monotonic()
        self.registered = 0
        self.from_state = 0
        self.connected = 0
        self.refused = 0
        self.all_connected_once = False
        self.all_connected = False
        self.lost_at = 0.0
        self.failure: BaseException | None = None
        self.stream_warnings = Throttled()
        self.register_warnings = Throttled()
        self._pems: dict[bytes, bytes] = {}
        self._register_stub: pb_grpc.AgentServiceStub | None = None
        self._register_channel: grpc.aio.Channel | None = None
        self._stop = asyncio.Event()
        # Bounds registrations and stream openings in flight (TLS handshakes, CSR signing and
        # store writes on the controller), so thousands of hosts queue here, not there.
        self.slots = asyncio.Semaphore(settings.concurrency)
        self._ca_lock = asyncio.Lock()
        self.hosts = [SimHost(self, i) for i in range(settings.count)]

    # ---------------------------------------------------------------- run
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        if self.s.state_dir is not None:
            await asyncio.to_thread(self._load_state)
        if self.registered == self.s.count:
            self._log_registered()
        elif not self.s.join_token:
            raise SimulationError(
                f"{self.s.count - self.registered} hosts have no credential yet and there is no join token: "
                "pass --join-token or set DSTACK_JOIN_TOKEN (create one with "
                f"`dstack-controller token create --uses {self.s.count}`)"
            )
        log.info(
            "simulating %d hosts (%s) against %s; at most %d registrations or connects at once",
            self.s.count,
            f"{host_name(self.s.name_prefix, 0)}..{host_name(self.s.name_prefix, self.s.count - 1)}",
            self.s.controller,
            self.s.concurrency,
        )
        lives = [asyncio.ensure_future(h.live()) for h in self.hosts]
        progress = asyncio.ensure_future(self._progress())
        try:
            await self._stop.wait()
        finally:
            for t in (*lives, progress):
                t.cancel()
            await asyncio.gather(*lives, progress, return_exceptions=True)
            if self._register_channel is not None:
                await self._register_channel.close(None)
        if self.failure is not None:
            raise self.failure
        log.info("stopped %d simulated hosts", self.s.count)

    def fail(self, exc: BaseException) -> None:
        """The first fatal error ends the whole simulation (exit 1), as it would end a real agent."""
        if self.failure is None:
            self.failure = exc
        self._stop.set()

    def _load_state(self) -> None:
        for host in self.hosts:
            if host.load_state():
                self.registered += 1
                self.from_state += 1

    # -------------------------------------------------------- registration
    def intern(self, pem: bytes) -> bytes:
        """One copy of the CA PEM for all hosts, not one per host."""
        return self._pems.setdefault(pem, pem)

    async def register_stub(self) -> pb_grpc.AgentServiceStub:
        """One channel for every host's Register: CA discovery against the token's pin happens
        once for the process, and the call itself is all the controller sees of a registration."""
        async with self._ca_lock:
            if self._register_stub is None:
                ca_pem = b""
                if not self.s.insecure:
                    assert self.s.join_token
                    pinned = parse_token(self.s.join_token).ca_fingerprint
                    backoff = Backoff(cap_s=self.s.reconnect_cap_s)
                    try:
                        ca_pem = await discover_ca(self.s.controller, pinned, "pass --insecure", backoff, log.warning)
                    except UntrustedControllerError as exc:
                        raise SimulationError(str(exc)) from None
                self._register_channel = register_channel(self.s.controller, ca_pem, self.s.insecure)
                self._register_stub = pb_grpc.AgentServiceStub(self._register_channel)
            return self._register_stub

    # ----------------------------------------------------------- progress
    def note_registered(self) -> None:
        self.registered += 1
        if self.registered == self.s.count:
            self._log_registered()

    def _log_registered(self) -> None:
        saved = f" ({self.from_state} from {self.s.state_dir})" if self.from_state else ""
        log.info(
            "registered %d/%d hosts in %.1fs%s",
            self.registered,
            self.s.count,
            time.monotonic() - self.started,
            saved,
        )

    @property
    def target(self) -> int:
        return self.s.count - self.refused

    def note_connected(self) -> None:
        self.connected += 1
        self._check_all_connected()

    def note_disconnected(self) -> None:
        self.connected -= 1
        if self.all_connected:
            self.all_connected = False
            self.lost_at = time.monotonic()

    def note_refused(self) -> None:
        self.refused += 1
        if self.refused == self.s.count:
            # Nothing left to simulate: exit as a real agent does when its credential is refused.
            self.fail(SimulationError(f"the controller refused all {self.s.count} simulated hosts"))
        self._check_all_connected()

    def _check_all_connected(self) -> None:
        if self.all_connected or self.connected < self.target or self.target == 0:
            return
        self.all_connected = True
        gone = f" ({self.refused} refused by the controller)" if self.refused else ""
        if not self.all_connected_once:
            self.all_connected_once = True
            took = time.monotonic() - self.started
            log.info("connected %d/%d hosts in %.1fs%s", self.connected, self.target, took, gone)
        else:
            took = time.monotonic() - self.lost_at
            log.info("connected %d/%d hosts again after %.1fs%s", self.connected, self.target, took, gone)

    async def _progress(self) -> None:
        """A line every few seconds while hosts are still registering or (re)connecting."""
        last: tuple[int, int, int] | None = None
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            now = (self.registered, self.connected, self.refused)
            if not self.all_connected and now != last:
                log.info(
                    "registered %d/%d, connected %d/%d", self.registered, self.s.count, self.connected, self.target
                )
            last = now


class SimHost:
    """One simulated host: its identity, its executor (timers for containers) and the real agent's
    session carrying them."""

    def __init__(self, sim: Simulator, index: int) -> None:
        s = sim.s
        self.sim = sim
        self.name = host_name(s.name_prefix, index)
        self.facts = host_facts(s.template, index, self.name, s.zones, s.arches, s.region, AGENT_VERSION)
        if s.keep_instance_id:
            self.facts.cloud.instance_id = s.template.cloud.instance_id
        self.state_dir = s.state_dir / self.name if s.state_dir is not None else None
        self.identity = None if s.insecure else TlsIdentity(self.name, self.state_dir)
        self.cred: Credential | None = None
        self.executor = SimExecutor(self.name, sim.attempts_log)
        self.backoff = Backoff(cap_s=s.reconnect_cap_s)

    def load_state(self) -> bool:
        """True when the state dir already holds this host's credential (and, with TLS, its key and
        certificate): it connects without registering, as `dstack-agent run` does after a restart."""
        assert self.state_dir is not None
        cred = load_credential(self.state_dir)
        if cred is None:
            return False
        if self.identity is not None:
            if not (self.state_dir / KEY_FILE).exists() or not self.identity.load():
                return False
            self.identity.ca_pem = self.sim.intern(self.identity.ca_pem)
        self.cred = cred
        return True

    async def live(self) -> None:
        try:
            if self.cred is None:
                await self._register()
            assert self.cred is not None
            await self._session(self.cred).run()
        except CredentialRefused as exc:
            # A real agent exits here; one refused host must not end the others.
            log.warning(
                "the controller refused host %s (%s): it was removed or the controller's data was reset; "
                "this simulated host stops",
                self.name,
                exc,
            )
            self.sim.note_refused()
        except SimulationError as exc:
            self.sim.fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not pass in silence, nor take the other hosts down
            log.exception("simulated host %s stopped: %s", self.name, exc)
            self.sim.note_refused()

    def _session(self, cred: Credential) -> AgentSession:
        sim = self.sim
        return AgentSession(
            self.name,
            sim.s.controller,
            cred,
            self.identity,
            self.executor,
            self._hello_facts,
            self.backoff,
            SessionHooks(
                welcomed=lambda _: sim.note_connected(),
                lost=sim.note_disconnected,
                renewed=lambda _: log.debug("host %s renewed its certificate", self.name),
                warn=sim.stream_warnings.warning,
            ),
            slots=sim.slots,
        )

    async def _hello_facts(self) -> pb.HostFacts:
        return self.facts

    async def _register(self) -> None:
        s = self.sim.s
        assert s.join_token
        async with self.sim.slots:
            stub = await self.sim.register_stub()
            csr = b""
            if self.identity is not None:
                if self.state_dir is not None:  # a key file written (and fsynced) once: off the event loop
                    await asyncio.to_thread(self.identity.ensure_key)
                csr = self.identity.csr()
            request = pb.RegisterRequest(join_token=s.join_token, facts=self.facts, name=self.name, csr=csr)
            try:
                resp = await register(stub, request, s.controller, self.backoff, self.sim.register_warnings.warning)
            except RegistrationRefused as exc:
                raise SimulationError(
                    f"registration of {self.name} refused by the controller: {exc} "
                    f"(after {self.sim.registered}/{s.count} hosts registered; does the token allow "
                    f"{s.count} uses? `dstack-controller token create --uses {s.count}`)"
                ) from None
        if self.identity is not None:
            try:
                if self.state_dir is not None:
                    await asyncio.to_thread(self.identity.accept, resp.certificate, resp.ca_certificate)
                else:
                    self.identity.accept(resp.certificate, resp.ca_certificate)
            except ValueError as exc:
                raise SimulationError(f"the controller sent {self.name} an unusable certificate: {exc}") from None
            self.identity.ca_pem = self.sim.intern(self.identity.ca_pem)
        self.cred = Credential(resp.host_id, resp.host_name, resp.credential, s.controller, resp.agent_port)
        if self.state_dir is not None:
            await asyncio.to_thread(save_credential, self.state_dir, self.cred)
        self.backoff.reset()
        log.debug("registered %s as %s (%s)", self.name, self.cred.host_name, self.cred.host_id)
        self.sim.note_registered()
