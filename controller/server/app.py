"""Builds and runs the controller's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.images.platforms import PlatformLookup
from controller.server.agent_service import AgentService
from controller.server.client_service import ClientService
from controller.server.core import Controller
from controller.settings import ControllerSettings
from controller.store import Store
from controller.tokens import create_token, parse_token, secrets_match

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
    _, text = create_token(store, "api", description="admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return True


async def serve(settings: ControllerSettings, store: Store) -> None:
    controller = Controller(settings, store, PlatformLookup(settings.image_lookup))
    server = grpc.aio.server(
        options=[
            # Pings find agents whose machine vanished without closing the connection.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]
    )
    pb_grpc.add_AgentServiceServicer_to_server(AgentService(controller), server)
    pb_grpc.add_ClientServiceServicer_to_server(ClientService(controller), server)
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    log.info("listening on %s (plaintext gRPC; TLS arrives with the security work)", settings.listen)
    scheduler = asyncio.create_task(controller.run_scheduler())
    controller.wake()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    scheduler.cancel()
    await server.stop(grace=2)
    store.close()
