"""Where dstackctl finds the controller and its API token: flags, environment, ~/.dstack/ctl.yaml."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dstack_hybrid.shared.bounded_input import InputRefused, load_settings_file

from controller.cli.errors import UsageError
from controller.settings import DEFAULT_LISTEN


@dataclass(frozen=True)
class ClientSettings:
    controller: str
    token: str
    ca_file: str = ""
    ca_fingerprint: str = ""
    insecure: bool = False


def ctl_config_path() -> Path:
    return Path.home() / ".dstack" / "ctl.yaml"


def resolve(
    controller: str | None,
    token: str | None,
    ca_file: str | None = None,
    ca_fingerprint: str | None = None,
    insecure: bool = False,
) -> ClientSettings:
    file: dict[str, str] = {}
    path = ctl_config_path()
    if path.exists():
        try:
            loaded = load_settings_file(path, "settings")
        except InputRefused as exc:  # already a sentence naming the file
            raise UsageError(str(exc)) from None
        file = {str(k): str(v) for k, v in loaded.items()}
    address = controller or os.environ.get("DSTACK_CONTROLLER") or file.get("controller") or DEFAULT_LISTEN
    api_token = token or os.environ.get("DSTACK_TOKEN") or file.get("token") or ""
    if not api_token:
        raise UsageError(
            "no API token: pass --token, set DSTACK_TOKEN, or put token: in ~/.dstack/ctl.yaml "
            "(the admin token is in the controller's data dir, file admin-token)"
        )
    return ClientSettings(
        address,
        api_token.strip(),
        ca_file=ca_file or os.environ.get("DSTACK_CA_FILE") or file.get("ca_file", ""),
        ca_fingerprint=ca_fingerprint or os.environ.get("DSTACK_CA_FINGERPRINT") or file.get("ca_fingerprint", ""),
        insecure=insecure or os.environ.get("DSTACK_INSECURE", "") in ("1", "true") or file.get("insecure") == "True",
    )
