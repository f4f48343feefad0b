"""One host's stream to the controller, the same code for `dstack-agent run` and every host of
`dstack-agent simulate` (as Nomad's mock driver runs inside the real client), so scale tests
exercise what ships.

A stream: Hello (facts and the task containers the host still has, by attempt), then the controller's messages
dispatched to an Executor (Docker containers, or timers for simulated hosts), heartbeats at the
interval the Welcome names, a renewal CSR at every heartbeat from two thirds of the certificate's
life on. When it breaks it is opened again with backoff; only a refused credential ends it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.channels import stream_channel
from agent.identity import TlsIdentity
from agent.state import Credential

log = logging.getLogger("dstack.agent")

Send = Callable[[pb.AgentMessage], None]
Warn = Callable[..., None]

WELCOME_TIMEOUT_S = 30.0  # a stream the controller accepted but never answers holds a slot no longer
DEFAULT_HEARTBEAT_S = 10


class Executor(Protocol):
    """Where a host's tasks run. Tasks outlive a stream; what reports on them does not."""

    async def present_containers(self) -> list[tuple[str, int]]:
        """(task id, attempt) of what this host still has (for the Hello): a restarted agent
        re-adopts the current attempts; the controller releases the others."""
        ...

    def assign(self, assignment: pb.Assignment, send: Send) -> None:
        """Starts the task, or re-adopts it and reports from the controller's offsets."""
        ...

    def stop(self, stop: pb.StopTask) -> None: ...

    def release(self, release: pb.Release, send: Send) -> None:
        """The controller has all it needs, or the attempt is not current: forget that attempt and
        remove what is left of it; one that still ran is reported SUPERSEDED."""
        ...

    async def end_stream(self) -> None:
        """The stream ended: stop reporting (the tasks themselves go on)."""
        ...


class ExecutorUnavailable(Exception):
    """The executor cannot say what it holds (the Docker engine is down): the stream waits for it."""


class CredentialRefused(Exception):
    """The controller refused this host's credential: the host was removed or its data reset."""


def superseded(task_id: str, attempt: int) -> pb.AgentMessage:
    """What an executor reports after stopping a released attempt's container that still ran."""
    event = pb.TaskEvent(task_id=task_id, kind=pb.TASK_EVENT_KIND_SUPERSEDED, attempt=attempt,
                         at_ms=int(time.time() * 1000))  # fmt: skip
    return pb.AgentMessage(task_event=event)


def _nothing(*_: object) -> None:
    return None


@dataclass
class SessionHooks:
    """What differs between a real agent and a simulated host around the same stream."""

    welcomed: Callable[[pb.Welcome], object] = _nothing  # the first Welcome of a stream
    lost: Callable[[], object] = _nothing  # a welcomed stream ended
    heartbeat: Callable[[], object] = _nothing  # each heartbeat sent (the systemd watchdog)
    retrying: Callable[[], object] = _nothing  # before each backoff sleep
    renewed: Callable[[bytes], object] = _nothing  # a renewed certificate was taken
    # Runs from the first Welcome until the stream ends (the real agent's SIGHUP re-detection).
    while_connected: Callable[[Send], Awaitable[None]] | None = None
    warn: Warn = field(default=log.warning)


class AgentSession:
    def __init__(
        self,
        name: str,
        controller: str,
        cred: Credential,
        identity: TlsIdentity | None,  # None: --insecure, the credential is a bearer secret
        executor: Executor,
        hello_facts: Callable[[], Awaitable[pb.HostFacts]],
        backoff: Backoff,
        hooks: SessionHooks | None = None,
        slots: asyncio.Semaphore | None = None,  # bounds streams opening at once (thousands of simulated hosts)
    ) -> None:
        self.name, self.controller, self.cred, self.identity = name, controller, cred, identity
        self.executor = executor
        self.hello_facts = hello_facts
        self.backoff = backoff
        self.hooks = hooks or SessionHooks()
        self.slots = slots

    async def run(self) -> None:
        """Keeps a stream open for good; returns only by CredentialRefused (or cancellation)."""
        while True:
            try:
                await self.stream_once()
                reason = "the controller ended the stream"
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise CredentialRefused(exc.details() or exc.code().name) from None
                reason = exc.details() or exc.code().name
            except asyncio.TimeoutError:
                reason = f"no welcome within {WELCOME_TIMEOUT_S:.0f}s"
            except ExecutorUnavailable as exc:
                reason = str(exc)
            self.hooks.retrying()
            delay = self.backoff.next_delay()
            self.hooks.warn(
                "stream of %s to %s broke: %s; reconnecting in %.1fs", self.name, self.controller, reason, delay
            )
            await asyncio.sleep(delay)

    async def stream_once(self) -> None:
        """One stream, from Hello to its end (returns when the controller ends it; raises when it breaks)."""
        outbox: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
        send = outbox.put_nowait
        present = await self.executor.present_containers()
        facts = await self.hello_facts()
        hello = pb.Hello(
            facts=facts,
            # The ids alone too, for a controller older than attempts.
            container_task_ids=sorted({task_id for task_id, _ in present}),
            host_id=self.cred.host_id,
            containers=[pb.TaskContainer(task_id=t, attempt=a) for t, a in present],
        )
        send(pb.AgentMessage(hello=hello))
        loops: list[asyncio.Task[None]] = []
        welcomed = False
        holding = False
        channel, metadata = stream_channel(self.controller, self.cred, self.identity)
        try:
            if self.slots is not None:
                await self.slots.acquire()
                holding = True
            # Written by a task of ours rather than from a request iterator: grpc's iterator consumer
            # is a task nobody can await, and every broken stream would log its destruction.
            call = pb_grpc.AgentServiceStub(channel).Connect(metadata=metadata)
            loops.append(asyncio.ensure_future(_write_all(call, outbox)))
            while True:
                read = call.read()
                msg = await (read if welcomed else asyncio.wait_for(read, WELCOME_TIMEOUT_S))
                if not isinstance(msg, pb.ControllerMessage):  # grpc.aio.EOF: the controller ended the stream
                    return
                kind = msg.WhichOneof("body")
                if kind == "welcome":
                    if welcomed:
                        continue
                    welcomed = True
                    if holding and self.slots is not None:
                        self.slots.release()
                        holding = False
                    self.backoff.reset()
                    interval = msg.welcome.heartbeat_interval_s or DEFAULT_HEARTBEAT_S
                    loops.append(asyncio.ensure_future(self._heartbeats(send, interval)))
                    if self.hooks.while_connected is not None:
                        loops.append(asyncio.ensure_future(self.hooks.while_connected(send)))
                    self.hooks.welcomed(msg.welcome)
                elif kind == "assign":
                    self.executor.assign(msg.assign, send)
                elif kind == "stop":
                    self.executor.stop(msg.stop)
                elif kind == "release":
                    self.executor.release(msg.release, send)
                elif kind == "certificate":
                    await self._take_renewed(msg.certificate.certificate)
        finally:
            if holding and self.slots is not None:
                self.slots.release()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.executor.end_stream()
            if welcomed:
                self.hooks.lost()
            await channel.close(None)

    async def _heartbeats(self, send: Send, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            send(pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_ms=int(time.time() * 1000))))
            self.hooks.heartbeat()
            if self.identity is not None:
                csr = self.identity.renewal_csr(time.time())
                if csr is not None:
                    send(pb.AgentMessage(renew=pb.RenewCertificate(csr=csr)))

    async def _take_renewed(self, cert_pem: bytes) -> None:
        identity = self.identity
        if identity is None:
            return
        try:
            if identity.state_dir is not None:  # file writes and fsyncs: off the event loop
                await asyncio.to_thread(identity.accept, cert_pem, identity.ca_pem)
            else:
                identity.accept(cert_pem, identity.ca_pem)
        except ValueError as exc:  # not for our key, or not from our CA: keep the one we have
            self.hooks.warn("%s ignored a renewed certificate: %s", self.name, exc)
            return
        self.hooks.renewed(cert_pem)


async def _write_all(call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue[pb.AgentMessage]) -> None:
    # A finished call refuses writes; the reader learns why from the call itself.
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        while True:
            await call.write(await outbox.get())
