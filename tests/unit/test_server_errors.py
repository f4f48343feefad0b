"""Failures inside a servicer reach the caller as one sentence, over real gRPC on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from controller.server.errors import OneSentenceErrors
from controller.store import FULL, StorageError, StorageFull


async def _full(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise StorageFull(FULL, "database or disk is full")


async def _read_only(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise StorageError("the controller's storage is read-only", "attempt to write a readonly database")


async def _bug(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise KeyError("host-1")


async def _denied(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
    return b""


async def _stream_full(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    raise StorageFull(FULL, "database or disk is full")


async def _call(method: str, streaming: bool = False) -> tuple[grpc.StatusCode, str, list[bytes]]:
    handlers = {
        "Full": grpc.unary_unary_rpc_method_handler(_full),
        "ReadOnly": grpc.unary_unary_rpc_method_handler(_read_only),
        "Bug": grpc.unary_unary_rpc_method_handler(_bug),
        "Denied": grpc.unary_unary_rpc_method_handler(_denied),
        "StreamFull": grpc.unary_stream_rpc_method_handler(_stream_full),
    }
    server = grpc.aio.server(interceptors=[OneSentenceErrors()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.T", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    got: list[bytes] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                if streaming:
                    async for item in channel.unary_stream(f"/test.T/{method}")(b""):
                        got.append(item)
                else:
                    got.append(await channel.unary_unary(f"/test.T/{method}")(b""))
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or "", got
    finally:
        await server.stop(None)
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize(
    ("method", "code", "details"),
    [
        ("Full", grpc.StatusCode.RESOURCE_EXHAUSTED, FULL),
        ("ReadOnly", grpc.StatusCode.INTERNAL, "the controller's storage is read-only"),
        ("Bug", grpc.StatusCode.INTERNAL, "the controller failed to answer Bug: its log has the details"),
        ("Denied", grpc.StatusCode.PERMISSION_DENIED, "not yours"),  # aborts pass through unchanged
    ],
)
def test_unary_failures_are_one_sentence(method: str, code: grpc.StatusCode, details: str) -> None:
    assert asyncio.run(_call(method))[:2] == (code, details)


def test_a_stream_that_fails_midway_says_why_after_what_it_sent() -> None:
    code, details, got = asyncio.run(_call("StreamFull", streaming=True))
    assert (code, details, got) == (grpc.StatusCode.RESOURCE_EXHAUSTED, FULL, [b"first"])
