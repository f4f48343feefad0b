"""dstackctl's connections: the controller addresses it may use, and one gRPC channel to one."""

from __future__ import annotations

import re

import grpc

from controller.cli.errors import UsageError
from controller.pki.discovery import CONTROLLER_SAN

DEFAULT_PORT = 7443
_HAS_PORT = re.compile(r"^(\[[^\]]+\]|[^:\[\]]+):\d+$")


def split_addresses(text: str) -> list[str]:
    """`a:7443,b` -> ["a:7443", "b:7443"]: a comma-separated list, the default port added."""
    addresses = []
    for part in text.split(","):
        address = part.strip()
        if not address:
            continue
        if not _HAS_PORT.match(address):
            if address.count(":") > 1 and not address.startswith("["):
                address = f"[{address}]"  # a bare IPv6 address
            if not re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+)", address):
                raise UsageError(f"controller address {part.strip()!r} is not HOST or HOST:PORT")
            address = f"{address}:{DEFAULT_PORT}"
        addresses.append(address)
    if not addresses:
        raise UsageError(f"no controller address in {text!r}: give HOST:PORT, or several separated by commas")
    return addresses


def open_channel(address: str, ca: bytes | None) -> grpc.Channel:
    """A TLS channel that trusts `ca`, or a plaintext one when `ca` is None (--insecure)."""
    if ca is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(
        address,
        grpc.ssl_channel_credentials(root_certificates=ca),
        # The pinned CA is what is trusted; every controller certificate carries this name.
        options=[("grpc.ssl_target_name_override", CONTROLLER_SAN)],
    )
