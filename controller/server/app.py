"""Builds and runs the controller's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from dstack_hybrid.shared import sdnotify
from dstack_hybrid.shared.ca_discovery import split_address
from dstack_hybrid.shared.tokens import parse_token, secrets_match
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.images.platforms import PlatformLookup
from controller.rate_limit import RateLimiter
from controller.roles import Role
from controller.server.agent_service import AgentService
from controller.server.auth import ClientAuth
from controller.server.client_service import ClientService
from controller.server.core import Controller
from controller.server.errors import OneSentenceErrors
from controller.server.log_retention import purge_forever
from controller.server.ports import SERVER_OPTIONS, bind_failed
from controller.settings import ControllerSettings
from controller.store import Store
from controller.tls import ServerTLS, load_server_tls
from controller.tokens import create_token

log = logging.getLogger("dstack.controller")


def ensure_admin_token(store: Store, path: Path) -> bool:
    """Creates the admin API token on first start (or when the database lost it). True if created."""
    if path.exists():
        try:
            parsed = parse_token(path.read_text())
            token = store.get_token(parsed.id)
            if token is not None and not token.revoked and secrets_match(parsed.secret, token.secret_hash):
                return False
        except ValueError:
            pass
    _, text = create_token(store, "api", description="admin", role=Role.ADMIN)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return True


def controller_id(data_dir: Path) -> str:
    """This controller's id, kept in its data dir: the tag on everything it launches, so two
    controllers sharing a cloud account never adopt or terminate each other's instances."""
    path = data_dir / "controller-id"
    try:
        found = path.read_text().strip()
        if found:
            return found
    except FileNotFoundError:
        pass
    made = secrets.token_hex(8)
    path.write_text(made + "\n")
    return made


def start_bursting(controller: Controller, settings: ControllerSettings) -> asyncio.Task[None] | None:
    """With backends in the config file: the burst reconciler, and nothing of the SDKs until it runs."""
    file_config = settings.file_config
    if not file_config.backends:
        return None
    from controller.provisioning.reconciler import Burster

    address = file_config.burst.controller_address or settings.listen
    host, _ = split_address(address)
    if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::"):
        log.warning(
            "launched instances will dial %s, which they cannot reach: set burst.controller_address in %s",
            address,
            settings.config_path or "the config file",
        )
    burst = Burster(controller, controller.store, file_config, controller_id(settings.data_dir), address)
    controller.set_burst(burst)
    log.info("bursting to %s", ", ".join(burst.backends.kinds))
    return asyncio.create_task(burst.run())


def _bind(address: str, bind: Callable[[str], int]) -> int:
    """gRPC's add_*_port, with the reason a bind failed (gRPC raises "Failed to bind" or returns 0)."""
    try:
        port = bind(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise bind_failed(address)
    return port


def add_ports(server: grpc.aio.Server, settings: ControllerSettings) -> tuple[ServerTLS | None, int]:
    """Binds the client and agent endpoints; (the TLS material or None with --insecure, the agent port)."""
    if settings.insecure:
        log.warning(
            "--insecure: plaintext gRPC on %s; tokens and credentials cross the network in the clear "
            "and anyone who can reach it can pose as the controller",
            settings.listen,
        )
        return None, _bind(settings.listen, server.add_insecure_port)
    tls = load_server_tls(
        settings.data_dir,
        [h for h, _ in map(split_address, (settings.listen, settings.agent_listen))],
        settings.tls_sans,
    )
    pair = [(tls.key_pem, tls.cert_pem)]
    plain = grpc.ssl_server_credentials(pair)
    _bind(settings.listen, lambda address: server.add_secure_port(address, plain))
    mutual = grpc.ssl_server_credentials(pair, root_certificates=tls.ca.cert_pem, require_client_auth=True)
    agent_port = _bind(settings.agent_listen, lambda address: server.add_secure_port(address, mutual))
    log.info(
        "listening on %s (TLS) and %s (agents, mutual TLS); CA sha256 %s",
        settings.listen,
        settings.agent_listen,
        tls.ca.fingerprint,
    )
    return tls, agent_port


async def serve(settings: ControllerSettings, store: Store) -> None:
    limiter = RateLimiter(settings.client_rate) if settings.client_rate is not None else None
    server = grpc.aio.server(
        # Outermost first: a storage failure while checking a token is still one sentence.
        interceptors=[OneSentenceErrors(), ClientAuth(store, time.time, limiter)],
        options=[
            *SERVER_OPTIONS,
            # Pings find agents whose machine vanished without closing the connection.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ],
    )
    # Ports first: the controller is built once with what it hands out (its CA, the agent port).
    tls, agent_port = add_ports(server, settings)
    controller = Controller(settings, store, PlatformLookup(settings.image_lookup), tls=tls, agent_port=agent_port)
    controller.load()
    pb_grpc.add_AgentServiceServicer_to_server(AgentService(controller), server)
    pb_grpc.add_ClientServiceServicer_to_server(ClientService(controller), server)
    bursting = start_bursting(controller, settings)
    await server.start()
    scheduler = asyncio.create_task(controller.run_scheduler())
    retention = asyncio.create_task(purge_forever(store, settings.log_retention_s))
    controller.wake()
    sdnotify.ready(f"listening on {settings.listen}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    sdnotify.stopping()
    scheduler.cancel()
    retention.cancel()
    if bursting is not None:
        bursting.cancel()
    await server.stop(grace=2)
    store.close()
