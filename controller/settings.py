"""Controller settings: flags, then environment, then defaults (INTERFACES.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from controller.backends.config import ControllerFileConfig
from controller.configs.loader import load_settings_file
from controller.datadir import service_data_dir
from controller.images.platforms import LookupSettings
from controller.logs.cap import DEFAULT_LOG_CAP
from controller.rate_limit import ClientRate, client_rate

SYSTEM_CONFIG = Path("/etc/dstack/controller.yaml")

DEFAULT_LISTEN = "127.0.0.1:7443"
# What one API token may ask. A person typing, or a script polling every second, stays far below
# both; a loop that does not wait, or a generator flooding the queue, meets them.
DEFAULT_CLIENT_RATE = "20/s"  # with bursts of five seconds' worth (100 calls) unless --client-burst
DEFAULT_MAX_PENDING_PER_TOKEN = 1000


def default_agent_listen(listen: str) -> str:
    """The client port plus one, on the same address."""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + 1}" if port.isdigit() else listen


def running_as_service() -> bool:
    # systemd sets INVOCATION_ID for every unit it starts.
    return bool(os.environ.get("INVOCATION_ID"))


def default_data_dir() -> Path:
    env = os.environ.get("DSTACK_CONTROLLER_DATA_DIR")
    if env:
        return Path(env)
    return service_data_dir() if running_as_service() else Path.home() / ".dstack-controller"


def default_database_url(data_dir: Path) -> str:
    return os.environ.get("DSTACK_DATABASE_URL") or f"sqlite:///{data_dir.resolve() / 'controller.db'}"


def controller_file_path(explicit: Path | None, data_dir: Path) -> Path | None:
    """--config, else DSTACK_CONTROLLER_CONFIG, else DATA_DIR/config.yaml, else the package's
    /etc/dstack/controller.yaml; the first two must exist, the others are used when they do."""
    if explicit is not None:
        return explicit
    env = os.environ.get("DSTACK_CONTROLLER_CONFIG")
    if env:
        return Path(env)
    for candidate in (data_dir / "config.yaml", SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def load_controller_file(explicit: Path | None, data_dir: Path) -> tuple[Path | None, ControllerFileConfig]:
    """The config file's settings (ConfigError naming the file and line when it is wrong)."""
    path = controller_file_path(explicit, data_dir)
    if path is None:
        return None, ControllerFileConfig()
    return path, load_settings_file(path, ControllerFileConfig, "controller config")


@dataclass
class ControllerSettings:
    data_dir: Path
    database_url: str
    listen: str = DEFAULT_LISTEN
    host_grace_s: float = 40.0  # hosts not heard from for this long are offline and get no new tasks
    host_lost_after_s: float = 300.0  # ... and for this long lost: their tasks end, what they held is free
    heartbeat_interval_s: int = 10
    stop_grace_s: int = 10  # SIGTERM, then SIGKILL after this long
    log_cap: int = DEFAULT_LOG_CAP  # bytes of log kept per task: the oldest lines go beyond it
    log_retention_s: float = 7 * 24 * 3600  # a finished task's log is purged this long after it ended
    image_lookup: LookupSettings = field(default_factory=LookupSettings)
    # Agents' streams, with mutual TLS. A second port because grpcio can only require client
    # certificates on a port or not ask for them at all; clients and joining agents have none.
    agent_listen: str = ""
    insecure: bool = False  # plaintext, only with --insecure
    host_cert_validity_s: float = 24 * 3600  # short: renewed over the stream at two thirds
    tls_sans: list[str] = field(default_factory=list)
    file_config: ControllerFileConfig = field(default_factory=ControllerFileConfig)
    config_path: Path | None = None
    # Calls per API token (None: no limit), and how many of its tasks may wait for placement.
    client_rate: ClientRate | None = field(default_factory=lambda: client_rate(DEFAULT_CLIENT_RATE, None))
    max_pending_per_token: int | None = DEFAULT_MAX_PENDING_PER_TOKEN

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"
