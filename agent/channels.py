"""The agent's two gRPC channels to the controller: Register (TLS against the pinned CA, or
plaintext with --insecure) and the stream (mutual TLS with the host's certificate, on the
controller's agent port)."""

from __future__ import annotations

import grpc
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN, split_address

from agent.identity import TlsIdentity
from agent.state import Credential

Options = list[tuple[str, str | int]]

CHANNEL_OPTIONS: Options = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
# grpc shares one connection among channels with equal settings; a real host has its own, and
# so does each simulated one (it matters with --insecure, where nothing else tells them apart).
STREAM_OPTIONS: Options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
# Whatever address was dialled, the certificate must name the controller and chain to the pinned CA.
TLS_NAME: Options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]

Metadata = tuple[tuple[str, str], ...]


def register_channel(controller: str, ca_pem: bytes, insecure: bool) -> grpc.aio.Channel:
    if insecure:
        return grpc.aio.insecure_channel(controller, options=CHANNEL_OPTIONS)
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.aio.secure_channel(controller, creds, options=[*CHANNEL_OPTIONS, *TLS_NAME])


def stream_channel(
    controller: str, cred: Credential, identity: TlsIdentity | None
) -> tuple[grpc.aio.Channel, Metadata]:
    """The stream's channel and call metadata; identity None means --insecure (a bearer credential)."""
    if identity is None:
        channel = grpc.aio.insecure_channel(controller, options=STREAM_OPTIONS)
        return channel, (("authorization", f"Bearer {cred.credential}"),)
    host, _ = split_address(controller)
    host = f"[{host}]" if ":" in host else host
    creds = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem, private_key=identity.key_pem, certificate_chain=identity.cert_pem
    )
    return grpc.aio.secure_channel(f"{host}:{cred.agent_port}", creds, options=[*STREAM_OPTIONS, *TLS_NAME]), ()
