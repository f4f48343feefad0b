"""Credentials on calls: `authorization: Bearer <token>` metadata, and what the token may do.

ClientAuth stands in front of every ClientService method: it finds the API token, checks its
role against the table in controller/server/access.py, spends one call of the token's rate limit
(controller/rate_limit.py), refuses requests past their size (controller/server/request_size.py),
and hands the token to the method through `caller()` (Submit
records who submitted). The methods themselves check nothing."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token, secrets_match

from controller.rate_limit import RateLimiter
from controller.server.access import CLIENT_SERVICE, denial
from controller.server.request_size import oversized
from controller.store import Store
from controller.store.records import HostRecord, TokenRecord

log = logging.getLogger("dstack.controller.auth")

# The API token of the call being served: set by ClientAuth in the task that runs the method.
_CALLER: contextvars.ContextVar[TokenRecord] = contextvars.ContextVar("dstack_caller")


def caller() -> TokenRecord:
    """The API token that made the ClientService call being served (ClientAuth checked it)."""
    return _CALLER.get()


def bearer(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.lower().startswith("bearer "):
            return value[len("bearer ") :].strip()
    return ""


def api_token(store: Store, token_text: str, now: float) -> TokenRecord | None:
    """The stored API token `token_text` proves, or None (malformed, unknown, revoked, expired)."""
    try:
        parsed = parse_token(token_text)
    except TokenFormatError:
        return None
    token = store.get_token(parsed.id) if parsed.kind == "api" else None
    if token is None or token.kind != "api" or token.revoked or token.role is None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    return token if secrets_match(parsed.secret, token.secret_hash) else None


def host_for_credential(store: Store, credential: str) -> HostRecord | None:
    try:
        parsed = parse_token(credential)
    except TokenFormatError:
        return None
    host = store.get_host(parsed.id) if parsed.kind == "host" else None
    if host is None or not secrets_match(parsed.secret, host.credential_hash):
        return None
    return host


class _Gate:
    """What _admit needs: the store for tokens, the wall clock for their expiry, and the rate
    limiter with its own monotonic clock (None: no limit)."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        limiter: RateLimiter | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.store, self.clock, self.limiter, self.monotonic = store, clock, limiter, monotonic


async def _admit(gate: _Gate, rpc: str, context: grpc.aio.ServicerContext) -> TokenRecord:
    token = api_token(gate.store, bearer(context), gate.clock())
    if token is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API token")
        raise AssertionError("unreachable")
    assert token.role is not None  # api_token admits only API tokens, which have one
    # Before the role: a refused call is still a call the controller answered.
    if gate.limiter is not None:
        wait_s = gate.limiter.admit(token.id, gate.monotonic())
        if wait_s > 0:
            log.info("token %s over its rate limit (%s)", token.id, rpc)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, gate.limiter.refusal(wait_s))
    refused = denial(rpc, token.role)
    if refused:
        log.info("token %s (%s) refused %s", token.id, token.role, rpc)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
    return token


async def _check_size(rpc: str, request: Any, context: grpc.aio.ServicerContext) -> None:
    refused = oversized(rpc, request)
    if refused:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused)


def _unary(behavior: Callable[..., Awaitable[Any]], rpc: str, gate: _Gate) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        _CALLER.set(await _admit(gate, rpc, context))
        await _check_size(rpc, request, context)
        return await behavior(request, context)

    return wrapped


def _streaming(behavior: Callable[..., Any], rpc: str, gate: _Gate) -> Callable[..., AsyncIterator[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        # Admitted once: a stream, however long, is one call of the rate limit.
        _CALLER.set(await _admit(gate, rpc, context))
        await _check_size(rpc, request, context)
        async for response in behavior(request, context):
            yield response

    return wrapped


class ClientAuth(grpc.aio.ServerInterceptor):
    """Every ClientService call: a valid API token within its rate limit whose role covers the
    call, or refused before the method runs. Other services (the agents' stream) pass through
    untouched."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        limiter: RateLimiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gate = _Gate(store, clock, limiter, monotonic)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        service, _, rpc = handler_call_details.method.lstrip("/").rpartition("/")
        if handler is None or service != CLIENT_SERVICE:
            return handler
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, rpc, self.gate), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, rpc, self.gate), **kwargs)
        # The client service has no client-streaming calls; one added later is refused to all
        # rather than served unchecked.
        log.error("%s: no auth wrapper for its call kind; refused", handler_call_details.method)
        return None  # type: ignore[return-value]
