"""The first contact with a controller: find its CA by the join token's pin, then Register,
retrying what a later try can change (the controller not up yet) and nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from dstack_hybrid.shared.backoff import Backoff
from dstack_hybrid.shared.ca_discovery import discover_pinned_ca
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

log = logging.getLogger("dstack.agent")

# Refusals no retry can change: a spent or unknown token, bad facts, a token for another fleet.
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)
REGISTER_TIMEOUT_S = 30

Warn = Callable[..., None]


class RegistrationRefused(Exception):
    """The controller said no (its reason is the message)."""


async def discover_ca(controller: str, pinned: str, insecure_hint: str, backoff: Backoff, warn: Warn) -> bytes:
    """The controller's CA, checked against the token's pin before any secret is sent; retried
    while the controller cannot be reached. UntrustedControllerError passes through."""
    while True:
        try:
            return await asyncio.to_thread(discover_pinned_ca, controller, pinned, insecure_hint)
        except OSError as exc:
            delay = backoff.next_delay()
            warn("cannot reach %s (%s); retrying in %.1fs", controller, exc, delay)
            await asyncio.sleep(delay)


async def register(
    stub: pb_grpc.AgentServiceStub, request: pb.RegisterRequest, controller: str, backoff: Backoff, warn: Warn
) -> pb.RegisterResponse:
    while True:
        try:
            response: pb.RegisterResponse = await stub.Register(request, timeout=REGISTER_TIMEOUT_S)
            return response
        except grpc.aio.AioRpcError as exc:
            if exc.code() in REFUSED:
                raise RegistrationRefused(exc.details() or exc.code().name) from None
            delay = backoff.next_delay()
            warn("cannot register with %s (%s); retrying in %.1fs", controller, exc.details() or exc.code().name, delay)
            await asyncio.sleep(delay)
