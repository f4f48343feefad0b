"""dstackctl's connections: the controller addresses it may use, and one gRPC channel to one."""

from __future__ import annotations

import ipaddress
import re
import threading

import grpc
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN

from controller.cli.errors import UsageError

DEFAULT_PORT = 7443
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+)(:\d{1,5})?$")


def _address(text: str) -> str:
    if text.count(":") > 1 and not text.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(text)}]:{DEFAULT_PORT}"  # a bare IPv6 address
        except ValueError:
            pass
    match = _HOST_PORT.match(text)
    if match is None:
        raise UsageError(f"controller address {text!r} is not HOST or HOST:PORT")
    return text if match.group(2) else f"{text}:{DEFAULT_PORT}"


def split_addresses(text: str) -> list[str]:
    """`a:7443,b` -> ["a:7443", "b:7443"]: a comma-separated list, the default port added."""
    addresses = [_address(part.strip()) for part in text.split(",") if part.strip()]
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


def answers(channel: grpc.Channel, timeout_s: float) -> bool:
    """Whether the channel connects: True once READY, False at the first failure (a refused
    connection fails at once, where grpc.channel_ready_future would keep trying until timeout)."""
    settled = threading.Event()
    ready = False

    def watch(state: grpc.ChannelConnectivity) -> None:
        nonlocal ready
        if state == grpc.ChannelConnectivity.READY:
            ready = True
            settled.set()
        elif state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            settled.set()

    channel.subscribe(watch, try_to_connect=True)
    try:
        settled.wait(timeout_s)
    finally:
        channel.unsubscribe(watch)
    return ready
