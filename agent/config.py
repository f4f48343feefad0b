"""Agent settings: /etc/dstack/agent.yaml, then environment, then flags (each wins over the one before)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

DEFAULT_CONFIG = Path("/etc/dstack/agent.yaml")
DEFAULT_CONTROLLER = "127.0.0.1:7443"


class AgentConfigError(Exception):
    """Bad configuration: one sentence, exit status 2."""


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    controller: str = DEFAULT_CONTROLLER
    join_token: str | None = None
    fleet: str | None = None
    region: str | None = None
    zone: str | None = None
    labels: dict[str, str] = {}
    arch: Literal["amd64", "arm64"] | None = None
    cloud: Literal["auto", "off", "aws", "azure", "gcp"] = "auto"
    docker_host: str | None = None
    name: str | None = None


def running_as_service() -> bool:
    return bool(os.environ.get("INVOCATION_ID"))  # set by systemd for every unit


def default_state_dir() -> Path:
    return Path("/var/lib/dstack-agent") if running_as_service() else Path.home() / ".dstack-agent"


def load_config(path: Path | None) -> AgentConfig:
    """Reads the file (a missing default file is fine, a missing named one is not) and the environment."""
    data: dict[str, object] = {}
    file = path or DEFAULT_CONFIG
    if file.exists():
        try:
            loaded = YAML(typ="safe").load(file.read_text())
        except (OSError, YAMLError) as exc:
            raise AgentConfigError(f"cannot read {file}: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise AgentConfigError(f"{file} must be a mapping of settings")
        data.update(loaded or {})
    elif path is not None:
        raise AgentConfigError(f"config file not found: {path}")
    for key, env in (
        ("controller", "DSTACK_CONTROLLER"),
        ("join_token", "DSTACK_JOIN_TOKEN"),
        ("docker_host", "DOCKER_HOST"),
    ):
        if os.environ.get(env):
            data[key] = os.environ[env]
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise AgentConfigError(f"unknown key {where!r} in {file}") from None
        raise AgentConfigError(f"invalid {where} in {file}: {err['msg']}") from None
