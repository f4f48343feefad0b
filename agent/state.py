"""The agent's state dir: who it is (credential.json, 0600) after the first registration.
Its key and certificates sit beside it (agent/identity.py)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credential:
    host_id: str
    host_name: str
    credential: str  # bearer secret, only with --insecure; "" with TLS (the certificate is the credential)
    controller: str
    agent_port: int = 0  # where the controller takes the stream (mutual TLS)


def credential_path(state_dir: Path) -> Path:
    return state_dir / "credential.json"


def load_credential(state_dir: Path) -> Credential | None:
    path = credential_path(state_dir)
    try:
        return Credential(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


def save_credential(state_dir: Path, cred: Credential) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = credential_path(state_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(cred), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new, never half of one
