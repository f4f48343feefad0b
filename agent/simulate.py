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
import json
import logging
import math
import os
import resource
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dstack_hybrid.shared.ca_discovery import (
    CONTROLLER_SAN,
    UntrustedControllerError,
    discover_pinned_ca,
    split_address,
)
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.backoff import Backoff
from agent.config import AgentConfigError, load_config
from agent.identity import (
    KEY_FILE,
    RENEW_AT_FRACTION,
    check_certificate,
    load_certificate,
    load_or_create_key,
    make_csr,
    save_certificate,
)
from agent.sim.facts import ARCH_RAW, host_facts, host_name, template_from_json
from agent.sim.tasks import SimTask, SpecError, event, parse_spec, report
from agent.state import Credential, load_credential, save_credential
from agent.version import AGENT_VERSION

log = logging.getLogger("dstack.agent.sim")

# The real agent's keepalives (agent/daemon.py), so the controller sees the same traffic. That
# module is not imported: it pulls in the Docker SDK, which a simulation never uses.
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
# grpc shares one connection among channels with equal settings; a real host has its own, and
# so does each simulated one (it matters with --insecure, where nothing else tells them apart).
STREAM_OPTIONS: list[tuple[str, str | int]] = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
WELCOME_TIMEOUT_S = 30.0  # a stream the controller accepted but never answers holds a slot no longer
PROGRESS_EVERY_S = 5.0
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)
LOST = "the task's container disappeared from the host"


class SimulationError(ValueError):
    """The simulation cannot go on (a refused join token, a CA that does not match the pin): exit 1."""


@dataclass(frozen=True)
class SimSettings:
    count: int
    template: pb.HostFacts
    controller: str
    join_token: str | None
    insecure: bool = False
    name_prefix: str = "sim"
    zones: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    region: str | None = None
    state_dir: Path | None = None
    concurrency: int = 64
    reconnect_cap_s: float = 10.0
    keep_instance_id: bool = False  # one host that is the template's cloud instance (a launched VM)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    """Checks the flags and reads the template; AgentConfigError (exit 2) for bad input."""
    if args.count < 1:
        raise AgentConfigError("--count must be at least 1")
    if args.concurrency < 1:
        raise AgentConfigError("--concurrency must be at least 1")
    if args.keep_instance_id and args.count != 1:
        raise AgentConfigError("--keep-instance-id is for one host (--count 1): instance ids name one machine")
    if not args.name_prefix.strip():
        raise AgentConfigError("--name-prefix must not be empty")
    arches = _split(args.arches)
    for a in arches:
        if a not in ARCH_RAW:
            raise AgentConfigError(f"--arches: {a!r} is not one of {', '.join(ARCH_RAW)}")
    try:
        data = json.loads(args.facts.read_text())
    except OSError as exc:
        raise AgentConfigError(f"cannot read {args.facts}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise AgentConfigError(f"{args.facts} is not JSON: {exc}") from None
    try:
        template = template_from_json(data, str(args.facts))
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    if not arches and template.arch not in ARCH_RAW:
        raise AgentConfigError(
            f"{args.facts} has arch {template.arch or 'null'!r}: dstack-hybrid runs amd64 and arm64 hosts "
            "(or pass --arches)"
        )
    config = load_config(args.config)
    config = replace(
        config,
        **{k: v for k, v in (("controller", args.controller), ("join_token", args.join_token)) if v},
    )
    if config.join_token:
        try:
            parse_token(config.join_token)
        except TokenFormatError:
            raise AgentConfigError("the join token is malformed: expected dstack1.<ca-sha256>.<id>.<secret>") from None
    try:
        split_address(config.controller)
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    return SimSettings(
        count=args.count,
        template=template,
        controller=config.controller,
        join_token=config.join_token,
        insecure=args.insecure or config.insecure,
        name_prefix=args.name_prefix.strip(),
        zones=_split(args.zones),
        arches=arches,
        region=args.region or None,
        state_dir=args.state_dir,
        concurrency=args.concurrency,
        reconnect_cap_s=float(os.environ.get("DSTACK_AGENT_RECONNECT_MAX_S", "10")),
        keep_instance_id=args.keep_instance_id,
    )


def simulate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    _raise_fd_limit(settings.count)
    try:
        asyncio.run(Simulator(settings).run())
    except KeyboardInterrupt:  # before the loop's own handler is in place
        return 130
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


def _renew_at(cert_pem: bytes) -> float:
    """When two thirds of the certificate's life are gone (agent.identity.needs_renewal's rule),
    computed once per certificate rather than parsed again at every heartbeat of every host."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return (start + (end - start) * RENEW_AT_FRACTION).timestamp()


def _check_certificate(cert_pem: bytes, ca_pem: bytes, key: ec.EllipticCurvePrivateKey) -> None:
    check_certificate(cert_pem, ca_pem, key.public_key())


class Simulator:
    def __init__(self, settings: SimSettings) -> None:
        self.s = settings
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
                if self.s.insecure:
                    channel = grpc.aio.insecure_channel(self.s.controller, options=CHANNEL_OPTIONS)
                else:
                    ca_pem = self.intern(await self._discover_ca())
                    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
                    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", CONTROLLER_SAN)]
                    channel = grpc.aio.secure_channel(self.s.controller, creds, options=options)
                self._register_channel = channel
                self._register_stub = pb_grpc.AgentServiceStub(channel)
            return self._register_stub

    async def _discover_ca(self) -> bytes:
        assert self.s.join_token
        pinned = parse_token(self.s.join_token).ca_fingerprint
        backoff = Backoff(cap_s=self.s.reconnect_cap_s)
        while True:
            try:
                return await asyncio.to_thread(discover_pinned_ca, self.s.controller, pinned, "pass --insecure")
            except UntrustedControllerError as exc:
                raise SimulationError(str(exc)) from None
            except OSError as exc:
                delay = backoff.next_delay()
                log.warning("cannot reach %s (%s); retrying in %.1fs", self.s.controller, exc, delay)
                await asyncio.sleep(delay)

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


async def _write_all(call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue[pb.AgentMessage]) -> None:
    # A finished call refuses writes; the reader learns why from the call itself.
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        while True:
            await call.write(await outbox.get())


class SimHost:
    """One simulated host: identity, tasks (its "containers") and the stream that carries them."""

    def __init__(self, sim: Simulator, index: int) -> None:
        s = sim.s
        self.sim = sim
        self.name = host_name(s.name_prefix, index)
        self.facts = host_facts(s.template, index, self.name, s.zones, s.arches, s.region, AGENT_VERSION)
        if s.keep_instance_id:
            self.facts.cloud.instance_id = s.template.cloud.instance_id
        self.state_dir = s.state_dir / self.name if s.state_dir is not None else None
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.key_pem = b""
        self.cert_pem = b""
        self.ca_pem = b""
        self.renew_at = math.inf
        self.cred: Credential | None = None
        self.tasks: dict[str, SimTask] = {}
        self.backoff = Backoff(cap_s=s.reconnect_cap_s)

    @property
    def insecure(self) -> bool:
        return self.sim.s.insecure

    # ------------------------------------------------------------ identity
    def _use_key(self, key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SimulationError(f"{self.state_dir}/{KEY_FILE} holds a {type(key).__name__}, not an EC key")
        self.key, self.key_pem = key, key_pem

    def _new_key(self) -> None:
        """P-256, as load_or_create_key makes: generated in well under a millisecond, so doing it
        on the event loop costs less than handing it to a thread."""
        key = ec.generate_private_key(ec.SECP256R1())
        self.key = key
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def _use_certificate(self, cert_pem: bytes, ca_pem: bytes) -> None:
        self.cert_pem, self.ca_pem = cert_pem, self.sim.intern(ca_pem)
        self.renew_at = _renew_at(cert_pem)

    def load_state(self) -> bool:
        """True when the state dir already holds this host's credential (and, with TLS, its
        certificate): it connects without registering, as `dstack-agent run` does after a restart."""
        assert self.state_dir is not None
        cred = load_credential(self.state_dir)
        if cred is None:
            return False
        if not self.insecure:
            found = load_certificate(self.state_dir)
            if found is None or not (self.state_dir / KEY_FILE).exists():
                return False
            self._use_key(load_or_create_key(self.state_dir))
            self._use_certificate(*found)
        self.cred = cred
        return True

    # ------------------------------------------------------------ lifetime
    async def live(self) -> None:
        try:
            if self.cred is None:
                await self._register()
            await self._stream_forever()
        except SimulationError as exc:
            self.sim.fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not pass in silence, nor take the other hosts down
            log.exception("simulated host %s stopped: %s", self.name, exc)
            self.sim.note_refused()

    async def _register(self) -> None:
        s = self.sim.s
        assert s.join_token
        async with self.sim.slots:
            stub = await self.sim.register_stub()
            csr = b""
            if not self.insecure:
                if self.state_dir is not None:
                    self._use_key(await asyncio.to_thread(load_or_create_key, self.state_dir))
                else:
                    self._new_key()
                csr = make_csr(self.key_pem, self.name)
            request = pb.RegisterRequest(join_token=s.join_token, facts=self.facts, name=self.name, csr=csr)
            while True:
                try:
                    resp: pb.RegisterResponse = await stub.Register(request, timeout=30)
                    break
                except grpc.aio.AioRpcError as exc:
                    # Refusals no retry can change: a spent token, bad facts, a token for another fleet.
                    if exc.code() in REFUSED:
                        raise SimulationError(
                            f"registration of {self.name} refused by the controller: {exc.details()} "
                            f"(after {self.sim.registered}/{s.count} hosts registered; does the token allow "
                            f"{s.count} uses? `dstack-controller token create --uses {s.count}`)"
                        ) from None
                    delay = self.backoff.next_delay()
                    self.sim.register_warnings.warning(
                        "cannot register with %s (%s); retrying in %.1fs",
                        s.controller,
                        exc.details() or exc.code().name,
                        delay,
                    )
                    await asyncio.sleep(delay)
        if not self.insecure:
            assert self.key is not None
            try:
                _check_certificate(resp.certificate, resp.ca_certificate, self.key)
            except ValueError as exc:
                raise SimulationError(f"the controller sent {self.name} an unusable certificate: {exc}") from None
            self._use_certificate(resp.certificate, resp.ca_certificate)
        self.cred = Credential(resp.host_id, resp.host_name, resp.credential, s.controller, resp.agent_port)
        if self.state_dir is not None:
            await asyncio.to_thread(self._save_registration)
        self.backoff.reset()
        log.debug("registered %s as %s (%s)", self.name, self.cred.host_name, self.cred.host_id)
        self.sim.note_registered()

    def _save_registration(self) -> None:
        assert self.state_dir is not None and self.cred is not None
        if not self.insecure:
            save_certificate(self.state_dir, self.cert_pem, self.ca_pem)
        save_credential(self.state_dir, self.cred)

    # -------------------------------------------------------------- stream
    async def _stream_forever(self) -> None:
        while True:
            try:
                await self._session()
                reason = "the controller ended the stream"
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    # A real agent exits here; one refused host must not end the others.
                    log.warning(
                        "the controller refused host %s (%s): it was removed or the controller's data was reset; "
                        "this simulated host stops",
                        self.name,
                        exc.details(),
                    )
                    self.sim.note_refused()
                    return
                reason = exc.details() or exc.code().name
            except asyncio.TimeoutError:
                reason = f"no welcome within {WELCOME_TIMEOUT_S:.0f}s"
            delay = self.backoff.next_delay()
            self.sim.stream_warnings.warning(
                "stream of %s to %s broke: %s; reconnecting in %.1fs", self.name, self.sim.s.controller, reason, delay
            )
            await asyncio.sleep(delay)

    def _stream_channel(self) -> tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]]:
        assert self.cred is not None
        if self.insecure:
            channel = grpc.aio.insecure_channel(self.sim.s.controller, options=STREAM_OPTIONS)
            return channel, (("authorization", f"Bearer {self.cred.credential}"),)
        host, _ = split_address(self.sim.s.controller)
        host = f"[{host}]" if ":" in host else host
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem
        )
        options = [*STREAM_OPTIONS, ("grpc.ssl_target_name_override", CONTROLLER_SAN)]
        return grpc.aio.secure_channel(f"{host}:{self.cred.agent_port}", creds, options=options), ()

    async def _session(self) -> None:
        assert self.cred is not None
        outbox: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
        outbox.put_nowait(
            pb.AgentMessage(
                hello=pb.Hello(facts=self.facts, container_task_ids=sorted(self.tasks), host_id=self.cred.host_id)
            )
        )

        reporters: dict[str, asyncio.Task[None]] = {}
        heartbeat: asyncio.Task[None] | None = None
        writer: asyncio.Task[None] | None = None
        welcomed = False
        holding = False
        channel, metadata = self._stream_channel()
        try:
            await self.sim.slots.acquire()
            holding = True
            # Written by a task of ours rather than from a request iterator: grpc's iterator consumer
            # is a task nobody can await, and every broken stream would log its destruction.
            call = pb_grpc.AgentServiceStub(channel).Connect(metadata=metadata)
            writer = asyncio.ensure_future(_write_all(call, outbox))
            while True:
                read = call.read()
                msg = await (read if welcomed else asyncio.wait_for(read, WELCOME_TIMEOUT_S))
                if not isinstance(msg, pb.ControllerMessage):  # grpc.aio.EOF: the controller ended the stream
                    return
                kind = msg.WhichOneof("body")
                if kind == "welcome":
                    if holding:
                        self.sim.slots.release()
                        holding = False
                    self.backoff.reset()
                    if heartbeat is None:
                        interval = msg.welcome.heartbeat_interval_s or 10
                        heartbeat = asyncio.ensure_future(self._heartbeats(outbox, interval))
                    if not welcomed:
                        welcomed = True
                        self.sim.note_connected()
                elif kind == "assign":
                    self._assign(msg.assign, outbox, reporters)
                elif kind == "stop":
                    task = self.tasks.get(msg.stop.task_id)
                    if task is not None:
                        task.stop(msg.stop.abort)
                elif kind == "release":
                    gone = self.tasks.pop(msg.release.task_id, None)
                    if gone is not None:
                        gone.remove()
                    reporter = reporters.pop(msg.release.task_id, None)
                    if reporter is not None:
                        reporter.cancel()
                elif kind == "certificate":
                    await self._store_renewed(msg.certificate.certificate)
        finally:
            if holding:
                self.sim.slots.release()
            helpers = [t for t in (writer, heartbeat, *reporters.values()) if t is not None]
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if welcomed:
                self.sim.note_disconnected()
            await channel.close(None)

    def _assign(
        self, a: pb.Assignment, outbox: asyncio.Queue[pb.AgentMessage], reporters: dict[str, asyncio.Task[None]]
    ) -> None:
        """Starts the task unless it runs already (a re-assignment after a reconnect re-adopts it)."""
        task = self.tasks.get(a.task_id)
        if task is None:
            if a.started:
                # The controller saw it running, but this process has no memory of it (restarted).
                outbox.put_nowait(event(a.task_id, pb.TASK_EVENT_KIND_LOST, reason=LOST))
                return
            try:
                seconds, exit_code = parse_spec(a.run)
            except SpecError as exc:
                outbox.put_nowait(event(a.task_id, pb.TASK_EVENT_KIND_FAILED_TO_START, reason=str(exc)))
                return
            task = SimTask(a.task_id, self.name, seconds, exit_code)
            self.tasks[a.task_id] = task
            log.debug("task %s started on %s for %.1fs", a.task_name, self.name, seconds)
        current = reporters.get(a.task_id)
        if current is None or current.done():
            reporters[a.task_id] = asyncio.ensure_future(report(task, a, outbox.put_nowait))

    async def _heartbeats(self, outbox: asyncio.Queue[pb.AgentMessage], interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            outbox.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_ms=int(time.time() * 1000))))
            # As the real agent: ask at every heartbeat from two thirds of the life on, until one comes.
            if not self.insecure and time.time() >= self.renew_at:
                outbox.put_nowait(pb.AgentMessage(renew=pb.RenewCertificate(csr=make_csr(self.key_pem, self.name))))

    async def _store_renewed(self, cert_pem: bytes) -> None:
        if self.insecure or self.key is None:
            return
        try:
            _check_certificate(cert_pem, self.ca_pem, self.key)
            if self.state_dir is not None:
                await asyncio.to_thread(save_certificate, self.state_dir, cert_pem, self.ca_pem)
        except ValueError as exc:  # keep the certificate we have
            log.warning("host %s ignored a renewed certificate: %s", self.name, exc)
            return
        self._use_certificate(cert_pem, self.ca_pem)
        log.debug("host %s renewed its certificate", self.name)
