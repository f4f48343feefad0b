"""What a failed call tells its caller: one sentence, never gRPC's `Unexpected <class ...>: ...`.

An exception that escapes a servicer reaches the client as gRPC's "Unexpected <class
'sqlite3.OperationalError'>: database or disk is full". This interceptor stands around every
method instead: the controller's storage failing is said in the store's sentence (RESOURCE_EXHAUSTED
when it is full: the caller may retry once space is freed), and anything else (a bug) is logged
with its traceback here while the caller is told to look there."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from controller.store import StorageError, StorageFull

log = logging.getLogger("dstack.controller")


def status_for(exc: StorageError) -> grpc.StatusCode:
    return grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, StorageFull) else grpc.StatusCode.INTERNAL


async def _fail(exc: Exception, method: str, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, grpc.aio.BaseError):  # context.abort's own exception: the status is already set
        raise exc
    if isinstance(exc, StorageError):
        # The store logged the failure once, with the driver's words.
        await context.abort(status_for(exc), str(exc))
    log.error("%s failed", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"the controller failed to answer {method}: its log has the details")


def _unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except Exception as exc:  # every failure becomes a sentence; _fail re-raises aborts
            await _fail(exc, method, context)

    return wrapped


def _streaming(behavior: Callable[..., Any], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            await _fail(exc, method, context)

    return wrapped


class OneSentenceErrors(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, method), **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, method), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, method), **kwargs)
        assert handler.stream_stream is not None  # the fourth kind: a handler has exactly one
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, method), **kwargs)
