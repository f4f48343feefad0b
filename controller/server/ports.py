"""Listening addresses: refused with a reason before gRPC tries them.

gRPC sets SO_REUSEPORT by default, so a second controller on a taken port would start and the
kernel would spread connections between the two (clients then fail TLS against the wrong CA
about half the time). The server turns that option off; this module tries each address the
way the server will bind it, so the refusal says why instead of gRPC's "Failed to bind"."""

from __future__ import annotations

import errno
import socket

from dstack_hybrid.shared.ca_discovery import split_address

# The largest message the server reads, clients' and agents' alike: gRPC's own default, said here
# so it is one number the README can quote. A client request past it is refused by gRPC before it
# is decoded ("Received message larger than max"); those within it meet the smaller caps of
# controller/server/request_size.py and bounded_input (1 MiB of configuration).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# The server's options: one process per port, and the message size above.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class ListenError(Exception):
    """An address cannot be listened on: one sentence; `status` is the exit status (2: bad input)."""

    def __init__(self, sentence: str, status: int = 1) -> None:
        super().__init__(sentence)
        self.status = status


def check(address: str) -> None:
    """Binds (and at once closes) a socket on every address `address` resolves to, with the
    options the gRPC server uses (SO_REUSEADDR, no SO_REUSEPORT); ListenError saying why not."""
    host, port = split_address(address)
    bind_host = host.strip("[]") or None
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ListenError(f"cannot listen on {address}: {host} does not resolve to an address", status=2) from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: a port in TIME_WAIT is free
            try:
                s.bind(sockaddr)
                s.listen(1)
            except OSError as exc:
                raise _refusal(address, exc) from None


def _refusal(address: str, exc: OSError) -> ListenError:
    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"cannot listen on {address}: the address is in use (is another dstack-controller running?)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"cannot listen on {address}: no network interface of this host has that address", 2)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ListenError(
            f"cannot listen on {address}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        )
    return ListenError(f"cannot listen on {address}: {exc.strerror or exc}")


def bind_failed(address: str) -> ListenError:
    """Why gRPC could not bind `address` (it says only "Failed to bind"): asks the kernel again."""
    try:
        check(address)
    except ListenError as exc:
        return exc
    return ListenError(f"cannot listen on {address}")
