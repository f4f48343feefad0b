"""The server's bind options and the reasons a listen address is refused, with real sockets."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest

from controller.server.ports import SERVER_OPTIONS, ListenError, bind_failed, check


def _bind_twice(options: list[tuple[str, int]]) -> int:
    """Two gRPC servers, one port: what the second one's bind returns (0 or RuntimeError: refused)."""

    async def run() -> int:
        first, second = grpc.aio.server(options=options), grpc.aio.server(options=options)
        port = first.add_insecure_port("127.0.0.1:0")
        await first.start()
        try:
            try:
                return second.add_insecure_port(f"127.0.0.1:{port}")
            except RuntimeError:
                return 0
        finally:
            await first.stop(None)
            await second.stop(None)

    return asyncio.run(run())


def test_grpc_shares_a_port_by_default_which_is_why_the_option_is_set() -> None:
    assert _bind_twice([]) != 0  # the hazard: both would listen


def test_with_the_servers_options_a_second_server_cannot_bind() -> None:
    assert _bind_twice(SERVER_OPTIONS) == 0


def test_a_listening_port_is_refused_as_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ListenError) as caught:
            check(address)
    assert caught.value.status == 1
    assert str(caught.value) == (
        f"cannot listen on {address}: the address is in use (is another dstack-controller running?)"
    )


def test_an_address_this_host_lacks_is_bad_input() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): on no interface here. bind() only asks the kernel.
    error = bind_failed("192.0.2.7:7443")
    assert error.status == 2
    assert str(error) == "cannot listen on 192.0.2.7:7443: no network interface of this host has that address"


def test_a_free_port_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check(f"127.0.0.1:{port}")
